from enum import StrEnum


class GenerateRequestModel(StrEnum):
    FLUX_2_KLEIN_9B = "flux-2-klein-9b"
    FLUX_DEV = "flux-dev"
    FLUX_SCHNELL = "flux-schnell"
    SDXL = "sdxl"
    SDXL_LIGHTNING = "sdxl-lightning"
    SDXL_TURBO = "sdxl-turbo"
    SD_1_5 = "sd-1.5"
    SD_3_5_LARGE = "sd-3.5-large"
    SD_3_5_MEDIUM = "sd-3.5-medium"

    def __str__(self) -> str:
        return str(self.value)
