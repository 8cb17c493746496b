"""A SmolServe's spec as typed, defaulted, checked data.

The CRD is the only statement of field names, types, enums, bounds and defaults; ``load_spec``
does with it what the API server does, because the emulator and ``smolserve render`` see objects
that were never defaulted or validated. By concern:

- ``types``: the frozen dataclasses ``load_spec`` returns, and ``SpecError``;
- ``schema``: the CRD read from the package, its defaults applied, the result validated, and
  unknown fields refused everywhere (top level, ``metadata``, ``spec``);
- ``rules``: the CRD's CEL cross-field rules (and the name rule), re-checked in code;
- ``load``: ``load_spec``, which runs them in that order and builds the dataclasses.

Everything public is importable from ``smolserve.spec``.
"""

from smolserve.spec.load import load_spec
from smolserve.spec.rules import (
    MAX_NAME_LENGTH,
    RESERVED_ARGS,
    RESERVED_ENV,
    cel_failures,
    check_name,
)
from smolserve.spec.schema import (
    ADAPTER_NAME_RE,
    CRD_RESOURCE,
    GENERATE_DEFAULTS,
    MAX_ADAPTER_NAME_LENGTH,
    OBJECT_META_FIELDS,
    apply_defaults,
    crd,
    crd_schema,
    object_fields,
    openapi_schema,
    prepare_validator,
    schema_error,
    spec_schema,
    unknown_field_error,
)
from smolserve.spec.types import (
    AutoscalingSpec,
    ConfigMapKeyRef,
    EndpointPickerRef,
    EngineSpec,
    InferencePoolSpec,
    LoraAdapter,
    LoraSpec,
    ModelSpec,
    ParsersSpec,
    PvcRef,
    ResourcesSpec,
    RolloutSpec,
    SecretKeyRef,
    ServiceSpec,
    SmolServeSpec,
    SpecError,
    TemplateSpec,
)

__all__ = [
    "ADAPTER_NAME_RE",
    "CRD_RESOURCE",
    "GENERATE_DEFAULTS",
    "MAX_ADAPTER_NAME_LENGTH",
    "MAX_NAME_LENGTH",
    "OBJECT_META_FIELDS",
    "RESERVED_ARGS",
    "RESERVED_ENV",
    "AutoscalingSpec",
    "ConfigMapKeyRef",
    "EndpointPickerRef",
    "EngineSpec",
    "InferencePoolSpec",
    "LoraAdapter",
    "LoraSpec",
    "ModelSpec",
    "ParsersSpec",
    "PvcRef",
    "ResourcesSpec",
    "RolloutSpec",
    "SecretKeyRef",
    "ServiceSpec",
    "SmolServeSpec",
    "SpecError",
    "TemplateSpec",
    "apply_defaults",
    "cel_failures",
    "check_name",
    "crd",
    "crd_schema",
    "load_spec",
    "object_fields",
    "openapi_schema",
    "prepare_validator",
    "schema_error",
    "spec_schema",
    "unknown_field_error",
]
