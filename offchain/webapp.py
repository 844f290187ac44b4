"""The market's web app (`webapp/`), served as static files with the `config.json` it reads.

`webapp/build.mjs` bundles the app into `webapp/dist/` (`make install` runs it). The page learns
everything else from `config.json`: the chains the suite is deployed on (the deployment files,
with the RPC URL of each chain this machine serves) and the content store's Kubo RPC API. The
built-in datasets the page offers (`webapp/presets.json`) are served as
`datasets/NAME.safetensors`, the bytes `dtm task post --dataset NAME` publishes, and its model
presets as `presets/NAME.json` and `presets/NAME.safetensors`, the program and initial weights
`dtm model export` writes for them (`NAME-dim16-layers2-lr0.003.json` and so on for each
combination of their menus); the MLP preset, sized by the data, as
`presets/MLP-input64-hidden32-classes10-batch32-lr0.1.json`, the program `dtm task post` makes.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import math
import mimetypes
import re
import shutil
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from offchain.chain.deployment import Deployment, deployments_dir
from offchain.chain.suite import ROOT

DIST = ROOT / "webapp" / "dist"
PRESETS = ROOT / "webapp" / "presets.json"


@functools.cache
def builtin_dataset(name: str) -> bytes:
    """A built-in dataset the app offers (`presets.json` "datasets"), as safetensors bytes: the digits,
    or the text (the GPT preset's: 400 rows of 13 tokens); KeyError for any other name."""
    from offchain.ml.artifacts import ALPHABET, digits_dataset, text_dataset

    if name not in json.loads(PRESETS.read_text())["datasets"]:
        raise KeyError(name)
    return {"digits": digits_dataset, "text": lambda: text_dataset(12, ALPHABET, 400)}[name]().to_bytes()


_EXPORTING = threading.Lock()  # PyTorch's graph capture is not thread-safe; the server's threads take turns


def menu_token(value: Any) -> str:
    """A menu value as the file names of a preset's combinations spell it: 16, 0.003, 4x16."""
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def preset_menus(name: str) -> dict[str, list[Any]]:
    """A program preset's menus (`presets.json` "programs" NAME "menus"): each a model keyword or an
    optimizer option, its first value the preset's own; KeyError for any other name."""
    return json.loads(PRESETS.read_text())["programs"][name]["menus"]


def preset_combinations(name: str) -> dict[str, dict[str, Any]]:
    """Every combination of a program preset's menus (`preset_menus`), by its file stem
    `NAME-dim16-layers2-lr0.003` (menus in their order); the first, the preset's own settings, also
    as `NAME`. KeyError for any other name."""
    menus = preset_menus(name)
    combinations = [dict(zip(menus, values)) for values in itertools.product(*menus.values())]
    stems = {name + "".join(f"-{key}{menu_token(value)}" for key, value in choices.items()): choices
             for choices in combinations}
    return {name: combinations[0], **stems}


def preset_program(name: str, choices: dict[str, Any] | None = None) -> tuple[bytes, bytes]:
    """A model preset the app offers as a program (`presets.json` "programs"), with `choices` from
    its menus (default: the first of each): the program and its initial weights as `dtm model
    export` writes them, exported once per combination; KeyError for any other name or choice."""
    offered = preset_combinations(name)
    stem = next((stem for stem, combination in offered.items() if combination == (choices or offered[name])), None)
    if stem is None:
        raise KeyError(f"{name} offers no {choices}")
    with _EXPORTING:
        return _export_preset(name, stem)


@functools.cache
def _export_preset(name: str, stem: str) -> tuple[bytes, bytes]:
    from offchain.ml.capture import ExportConfig
    from offchain.ml.exporter import export_model, optimizer_from_options

    preset = json.loads(PRESETS.read_text())["programs"][name]
    choices = preset_combinations(name)[stem]
    kwargs = {**preset["kwargs"], **{key: v for key, v in choices.items() if key in preset["kwargs"]}}
    optimizer = {**preset["optimizer"], **{key: v for key, v in choices.items() if key in preset["optimizer"]}}
    config = ExportConfig(preset["batch_size"], tuple(preset["input_shape"]), preset["loss"],
                          optimizer_from_options(optimizer))
    program, weights = export_model(preset["model"], kwargs, config, preset["seed"])
    return program.to_bytes(), weights


_MLP_STEM = re.compile(r"MLP-input(\d{1,6})-hidden(\d{1,6})-classes(\d{1,6})-batch(\d{1,6})-lr([0-9.e+-]{1,24})")


def mlp_preset_files(stem: str) -> tuple[bytes, bytes]:
    """The MLP preset's program and initial weights for `MLP-input{D}-hidden{H}-classes{C}-batch{B}-lr{LR}`
    (`dtm task post` on D features and C classes with --hidden H --batch-size B --lr LR), the hidden
    width and batch size from the page's menus; KeyError naming what is off limits otherwise."""
    match = _MLP_STEM.fullmatch(stem)
    if match is None:
        raise KeyError(f"{stem}: the MLP preset is MLP-input<features>-hidden<units>-classes<classes>-batch<rows>-lr<rate>")
    features, hidden, classes, batch = map(int, match.groups()[:4])
    try:
        lr = float(match[5])
    except ValueError:
        lr = math.nan
    from offchain.ml.artifacts import MAX_DATASET_DIM as MAX_FEATURES  # a dataset's limits (offchain/ml/data.py)
    from offchain.ml.data import MAX_CLASSES

    menus = json.loads(PRESETS.read_text())["mlp"]
    if not (1 <= features <= MAX_FEATURES and 2 <= classes <= MAX_CLASSES and hidden in menus["hidden"]
            and batch in menus["batch_size"] and 0 < lr <= 10):
        raise KeyError(f"{stem}: the MLP preset takes 1 to {MAX_FEATURES} features, 2 to {MAX_CLASSES} classes, "
                       f"hidden {' or '.join(map(str, menus['hidden']))}, batch {' or '.join(map(str, menus['batch_size']))} "
                       "and a learning rate in (0, 10]")
    with _EXPORTING:
        return _export_mlp(features, hidden, classes, batch, lr)


@functools.lru_cache(maxsize=32)
def _export_mlp(features: int, hidden: int, classes: int, batch: int, lr: float) -> tuple[bytes, bytes]:
    from offchain.ml.artifacts import save_tensors
    from offchain.ml.exporter import mlp_preset

    program, _, weights = mlp_preset(features, (hidden,), classes, batch_size=batch, lr=lr)
    return program.to_bytes(), save_tensors(weights)


def builtin_file(path: str) -> bytes:
    """What the app serves next to its files: `datasets/NAME.safetensors` (`builtin_dataset`),
    `presets/STEM.json` and `presets/STEM.safetensors` (`preset_program` of the combination
    `preset_combinations` names STEM); KeyError otherwise."""
    folder, _, file = path.strip("/").partition("/")
    stem, _, suffix = file.rpartition(".")
    if folder == "datasets" and suffix == "safetensors":
        return builtin_dataset(stem)
    if folder == "presets" and suffix in ("json", "safetensors"):
        name = stem.partition("-")[0]
        if name == "MLP":
            return mlp_preset_files(stem)[suffix == "safetensors"]
        offered = preset_combinations(name)
        if stem not in offered:
            raise KeyError(f"{file}: the {name} preset's menus offer " + "; ".join(
                f"{key} {' or '.join(map(menu_token, values))}" for key, values in preset_menus(name).items()))
        return preset_program(name, offered[stem])[suffix == "safetensors"]
    raise KeyError(path)


def builtin_paths() -> list[str]:
    """Every file `builtin_file` serves that a static copy of the app can hold: the datasets, each
    program preset's every combination, and the MLP preset on the digits at the page's default
    learning rate (sized by the data, it is otherwise served on request)."""
    presets = json.loads(PRESETS.read_text())
    mlp = presets["mlp"]
    stems = ([stem for name in presets["programs"] for stem in preset_combinations(name)]
             + [f"MLP-input64-hidden{hidden}-classes10-batch{batch}-lr0.1"
                for hidden in mlp["hidden"] for batch in mlp["batch_size"]])
    return ([f"datasets/{name}.safetensors" for name in presets["datasets"]]
            + [f"presets/{stem}.{suffix}" for stem in stems for suffix in ("json", "safetensors")])


class WebAppNotBuilt(FileNotFoundError):
    """`webapp/dist` is missing."""


def app_config(rpc_urls: dict[int, str], ipfs_api: str | None, directory: Path | None = None) -> dict[str, Any]:
    """What the page reads: every deployment file in `directory` (the chains in `rpc_urls` first,
    so the page reads the local chain before a wallet picks one), and the store's API URL."""
    deployments = []
    for path in sorted((directory or deployments_dir()).glob("*.yaml")):
        deployment = Deployment.load(path)
        deployments.append({"name": path.stem, "chain_id": deployment.chain_id, "block": deployment.block,
                            "rpc_url": rpc_urls.get(deployment.chain_id), "contracts": deployment.contracts})
    deployments.sort(key=lambda d: d["rpc_url"] is None)
    return {"deployments": deployments, "ipfs_api": ipfs_api}


def _dist(dist: Path) -> Path:
    if not (dist / "index.html").exists():
        raise WebAppNotBuilt(f"the web app is not built ({dist} is missing): run `make install` "
                             "(or `npm ci && npm run build`)")
    return dist


def export(out: Path, config: dict[str, Any], dist: Path | None = None) -> Path:
    """The app as static files in `out`, with its `config.json`, for any web server."""
    shutil.copytree(_dist(dist or DIST), out, dirs_exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for path in builtin_paths():
        (out / path).parent.mkdir(exist_ok=True)
        (out / path).write_bytes(builtin_file(path))
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _AppServer

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path == "/config.json":
            return self._send(200, json.dumps(self.server.config).encode(), "application/json", "no-store")
        if path.startswith(("/datasets/", "/presets/")):
            try:
                body = builtin_file(path)
            except KeyError as missing:
                return self._send(404, f"not found: {missing.args[0]}\n".encode(), "text/plain", "no-store")
            return self._send(200, body, "application/octet-stream", "no-cache")
        name = "index.html" if path == "/" else path.lstrip("/")
        file = (self.server.dist / name).resolve()
        if file.parent != self.server.dist or not file.is_file():
            return self._send(404, b"not found\n", "text/plain", "no-store")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        body, zipped = file.read_bytes(), "gzip" in self.headers.get("Accept-Encoding", "")
        self._send(200, _gzip(body) if zipped else body, kind, "no-cache", zipped)

    def _send(self, status: int, body: bytes, kind: str, cache: str, zipped: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind if not kind.startswith("text/") else kind + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("Vary", "Accept-Encoding")
        if zipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815


@functools.lru_cache(maxsize=16)
def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, mtime=0)


class _AppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], dist: Path, config: dict[str, Any]):
        super().__init__(address, _Handler)
        self.dist, self.config = dist.resolve(), config


class AppServer:
    """The app served in a background thread; `close()` stops it."""

    def __init__(self, httpd: _AppServer):
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, name="webapp", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.thread.join()
        self.httpd.server_close()


def serve_app(config: dict[str, Any], host: str = "127.0.0.1", port: int = 8080, dist: Path = DIST) -> AppServer:
    return AppServer(_AppServer((host, port), _dist(dist), config))


def app_origins(port: int) -> list[str]:
    """The origins a browser gives the app served on `port` (what the store's CORS allows)."""
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
