from enum import StrEnum


class ServiceUnavailableProblemCode(StrEnum):
    MODEL_UNAVAILABLE = "model_unavailable"

    def __str__(self) -> str:
        return str(self.value)
