"""InputSerializer copies its declared fields once per class and thread, not per instance:
instances in one thread reuse them (each one owning them while it validates), threads never
share them, and nested serializers keep their own copies."""

import threading

from django.test import SimpleTestCase

from cueapi.validation import InputSerializer, Int, Str, validate
from cueapi.errors import RequestValidationError


class Inner(InputSerializer):
    n = Int(min_value=1)


class Outer(InputSerializer):
    name = Str(max_length=5)
    inner = Inner()


class InputSerializerFieldsTests(SimpleTestCase):
    def test_one_thread_reuses_the_fields_and_each_instance_owns_them(self):
        first, second = Outer(data={}), Outer(data={})
        self.assertIs(first.fields["name"], second.fields["name"])
        self.assertIs(second.fields["name"].parent, second)
        self.assertIs(second.fields["inner"].parent, second)
        # the nested serializer's own fields belong to it, not to a shared per-class copy
        self.assertIs(second.fields["inner"].fields["n"].parent, second.fields["inner"])
        self.assertIsNot(second.fields["inner"].fields["n"], Inner(data={}).fields["n"])

    def test_threads_never_share_fields(self):
        mine = Outer(data={}).fields["name"]
        theirs = []
        thread = threading.Thread(target=lambda: theirs.append(Outer(data={}).fields["name"]))
        thread.start()
        thread.join()
        self.assertIsNot(mine, theirs[0])

    def test_results_and_errors_do_not_leak_between_validations(self):
        self.assertEqual(dict(validate(Outer, {"name": "ab", "inner": {"n": 2}}, "body")),
                         {"name": "ab", "inner": {"n": 2}})
        with self.assertRaises(RequestValidationError) as caught:
            validate(Outer, {"name": "toolong", "inner": {"n": 0}}, "body")
        self.assertEqual(sorted(d["field"] for d in caught.exception.details), ["body.inner.n", "body.name"])
        self.assertEqual(dict(validate(Outer, {"name": "ok", "inner": {"n": 3}}, "body")),
                         {"name": "ok", "inner": {"n": 3}})

    def test_concurrent_validations_in_threads_each_get_their_own_answer(self):
        results, errors = {}, []

        def run(i):
            try:
                for _ in range(200):
                    got = validate(Outer, {"name": f"t{i}", "inner": {"n": i + 1}}, "body")
                    assert got["inner"]["n"] == i + 1 and got["name"] == f"t{i}", got
                results[i] = True
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 8)
