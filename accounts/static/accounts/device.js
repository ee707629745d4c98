// The /auth/device page: send the typed email with the page's device code.
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = document.getElementById("result");
  const response = await fetch("/v1/auth/device-code/submit-email", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({
      device_code: JSON.parse(document.getElementById("device-code").textContent),
      email: document.getElementById("email").value,
    }),
  });
  const body = await response.json();
  result.textContent = response.ok
    ? "Check your email for the login link."
    : (body.error && body.error.message) || "Something went wrong.";
});
