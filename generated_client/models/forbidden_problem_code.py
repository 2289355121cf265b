from enum import StrEnum


class ForbiddenProblemCode(StrEnum):
    MODEL_NOT_IN_PLAN = "model_not_in_plan"

    def __str__(self) -> str:
        return str(self.value)
