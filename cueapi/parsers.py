"""Request body parsing with the reference's content-type rules (SERVER.md §1.1).

JSON is parsed when Content-Type is absent, `application/json` or `application/<x>+json`;
invalid JSON is 400 `invalid_json`. Any other content type (curl's default form type, say)
cannot hold a JSON object, so it fails validation with 422, as FastAPI does, with the
reference's message plus how to fix it (curl -d sends a form unless told otherwise).
"""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from cueapi.errors import RequestValidationError
from cueapi.validation import NOT_A_DICT

NOT_JSON_CONTENT_TYPE = f"{NOT_A_DICT}; send a JSON body with the header Content-Type: application/json"


def is_json_media_type(media_type):
    base = (media_type or "").split(";", 1)[0].strip().lower()
    if not base:
        return True
    main, _, sub = base.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class JSONBodyParser(BaseParser):
    media_type = "*/*"  # we decide below, so that no request ever gets DRF's 415

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        if not is_json_media_type(media_type):
            raise RequestValidationError([("body", NOT_JSON_CONTENT_TYPE)])
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ParseError("invalid_json") from None
