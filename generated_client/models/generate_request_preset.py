from enum import StrEnum


class GenerateRequestPreset(StrEnum):
    FAST = "fast"
    QUALITY = "quality"

    def __str__(self) -> str:
        return str(self.value)
