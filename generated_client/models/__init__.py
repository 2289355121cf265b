"""Contains all the data models used in inputs/outputs"""

from .bad_request_problem import BadRequestProblem
from .bad_request_problem_code import BadRequestProblemCode
from .field_error import FieldError
from .forbidden_problem import ForbiddenProblem
from .forbidden_problem_code import ForbiddenProblemCode
from .generate_request import GenerateRequest
from .generate_request_model import GenerateRequestModel
from .generate_request_output_format import GenerateRequestOutputFormat
from .generate_request_preset import GenerateRequestPreset
from .generate_response import GenerateResponse
from .generate_response_output_format import GenerateResponseOutputFormat
from .image import Image
from .image_media_type import ImageMediaType
from .internal_error_problem import InternalErrorProblem
from .internal_error_problem_code import InternalErrorProblemCode
from .method_not_allowed_problem import MethodNotAllowedProblem
from .method_not_allowed_problem_code import MethodNotAllowedProblemCode
from .model import Model
from .model_list import ModelList
from .not_found_problem import NotFoundProblem
from .not_found_problem_code import NotFoundProblemCode
from .payload_too_large_problem import PayloadTooLargeProblem
from .payload_too_large_problem_code import PayloadTooLargeProblemCode
from .plan_id import PlanId
from .problem import Problem
from .service_unavailable_problem import ServiceUnavailableProblem
from .service_unavailable_problem_code import ServiceUnavailableProblemCode
from .too_many_requests_problem import TooManyRequestsProblem
from .too_many_requests_problem_code import TooManyRequestsProblemCode
from .unauthorized_problem import UnauthorizedProblem
from .unauthorized_problem_code import UnauthorizedProblemCode
from .unsupported_media_type_problem import UnsupportedMediaTypeProblem
from .unsupported_media_type_problem_code import UnsupportedMediaTypeProblemCode

__all__ = (
    "BadRequestProblem",
    "BadRequestProblemCode",
    "FieldError",
    "ForbiddenProblem",
    "ForbiddenProblemCode",
    "GenerateRequest",
    "GenerateRequestModel",
    "GenerateRequestOutputFormat",
    "GenerateRequestPreset",
    "GenerateResponse",
    "GenerateResponseOutputFormat",
    "Image",
    "ImageMediaType",
    "InternalErrorProblem",
    "InternalErrorProblemCode",
    "MethodNotAllowedProblem",
    "MethodNotAllowedProblemCode",
    "Model",
    "ModelList",
    "NotFoundProblem",
    "NotFoundProblemCode",
    "PayloadTooLargeProblem",
    "PayloadTooLargeProblemCode",
    "PlanId",
    "Problem",
    "ServiceUnavailableProblem",
    "ServiceUnavailableProblemCode",
    "TooManyRequestsProblem",
    "TooManyRequestsProblemCode",
    "UnauthorizedProblem",
    "UnauthorizedProblemCode",
    "UnsupportedMediaTypeProblem",
    "UnsupportedMediaTypeProblemCode",
)
