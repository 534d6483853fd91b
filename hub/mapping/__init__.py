"""The mapping layer: declarative YAML specs compiled into callables that build Bundles."""

from hub.mapping.compiler import Mapper, SpecSource, compile_spec, parse_spec
from hub.mapping.loader import MappingSet, apply_overrides, load_spec_file, load_spec_text
from hub.mapping.transforms import REGISTRY as TRANSFORMS
from hub.mapping.transforms import register as register_transform

__all__ = [
    "TRANSFORMS",
    "Mapper",
    "MappingSet",
    "SpecSource",
    "apply_overrides",
    "compile_spec",
    "load_spec_file",
    "load_spec_text",
    "parse_spec",
    "register_transform",
]
