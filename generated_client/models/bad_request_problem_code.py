from enum import StrEnum


class BadRequestProblemCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_TYPE = "invalid_type"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    NEGATIVE_PROMPT_UNSUPPORTED = "negative_prompt_unsupported"
    STEP_CAP_EXCEEDED = "step_cap_exceeded"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_MODEL = "unknown_model"

    def __str__(self) -> str:
        return str(self.value)
