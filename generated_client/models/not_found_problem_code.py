from enum import StrEnum


class NotFoundProblemCode(StrEnum):
    MODEL_NOT_FOUND = "model_not_found"
    NOT_FOUND = "not_found"

    def __str__(self) -> str:
        return str(self.value)
