"""Reading rows from where a Dataset says they are, with errors that name the file and the fix.

Loading goes through 🤗 datasets (imported only here, when rows are read). Its errors come from pandas, pyarrow,
json and the codecs; :func:`load_source` translates the ones users meet into :class:`DataError` messages.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.console import say
from sagefinetune.core.deps import require
from sagefinetune.data.hub_copies import HUB_COPIES, UNAVAILABLE, HubCopy, reshape
from sagefinetune.errors import ConfigError, DataError, DatasetUnavailableError, SagefinetuneError

if TYPE_CHECKING:
    import datasets as hf_datasets

EXTENSIONS = {"csv": (".csv", ".tsv", ".txt"), "json": (".json", ".jsonl", ".ndjson"), "parquet": (".parquet", ".pq")}


@dataclass(frozen=True)
class Source:
    kind: str  # hub | csv | json | parquet | pandas | disk | example | s3
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> str:
        if self.kind == "pandas":
            return "pandas DataFrame"
        if self.kind == "hub" and self.args[0] in HUB_COPIES:
            return HUB_COPIES[self.args[0]].describe(self.args[1], dict(self.kwargs).get("revision"))
        shown = [repr(a) for a in self.args if a is not None]
        shown += [f"{k}={v!r}" for k, v in self.kwargs if v is not None]
        return f"{self.kind}({', '.join(shown)})"


# ---- checks at the builder call (cheap: stat calls only) --------------------------------------------------------
def file_list(kind: str, files: Any) -> tuple[Any, ...]:
    """The files (or glob patterns) of a from_csv / from_json / from_parquet call, checked to exist."""
    if isinstance(files, Mapping):
        from sagefinetune.data.split_checks import check_split_names

        check_split_names(files, f"from_{kind}({{...}})", f"from_{kind}({{'<name>': 'data.{kind}', ...}})")
        checked = {str(k): _paths(kind, v, split=str(k)) for k, v in files.items()}
        return tuple(sorted(checked.items()))
    return tuple(_paths(kind, files))


def _paths(kind: str, value: Any, split: str | None = None) -> list[str]:
    """The paths of one split (``split``: the key of the mapping form, whose fixes then use that form)."""
    items = [value] if isinstance(value, (str, Path)) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(v, (str, Path)) for v in items):
        raise ConfigError(f"from_{kind} expects a path, a list of paths or {{split: path}}; got {value!r}. "
                          f"Fix: from_{kind}('data.{kind}') or from_{kind}({{'train': ..., 'test': ...}}).")
    out = []
    for item in map(str, items):
        if glob.has_magic(item):
            if not glob.glob(item, recursive=True):
                raise ConfigError(f"from_{kind}: the pattern {item!r} matches no file. Fix: check it (cwd is {Path.cwd()}).")
        elif Path(item).is_dir():
            pattern = str(Path(item) / ("*" + EXTENSIONS[kind][0]))
            shown = f"{{{split!r}: {pattern!r}, ...}}" if split is not None else repr(pattern)
            raise ConfigError(f"from_{kind}: {item!r}" + (f" (the {split} split)" if split is not None else "")
                              + f" is a folder, not a file. Fix: name the files, e.g. from_{kind}({shown}).")
        elif not Path(item).exists():
            raise ConfigError(f"from_{kind}: no such file {item!r}. Fix: check the path (cwd is {Path.cwd()}).")
        out.append(item)
    return out


def check_frame(split: str, frame: Any) -> None:
    if not hasattr(frame, "columns") or not hasattr(frame, "to_dict"):
        raise ConfigError(f"from_pandas needs DataFrames; split {split!r} is a {type(frame).__name__}. "
                          "Fix: from_pandas(df) or from_pandas({'train': df_train, 'test': df_test}).")
    if len(frame) == 0:
        raise ConfigError(f"the DataFrame of split {split!r} is empty (0 rows; columns {[str(c) for c in frame.columns]}"
                          "). Fix: check the code that built it (a filter or a query that kept nothing?), or pass a "
                          "DataFrame with rows.")
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise ConfigError(f"the DataFrame of split {split!r} has duplicated columns {duplicated}; a column name must "
                          "say which one is meant. Fix: df.loc[:, ~df.columns.duplicated()] or rename them.")


def check_disk(path: Any) -> str:
    if not isinstance(path, (str, Path)) or not Path(path).is_dir():
        raise ConfigError(f"from_disk: {str(path)!r} is not a folder written by save_to_disk. Fix: check the path "
                          f"(cwd is {Path.cwd()}).")
    return str(path)


# ---- reading ---------------------------------------------------------------------------------------------------
def load_source(source: Source, frames: Mapping[str, Any] | None, splits: Mapping[str, str] | None,
                token: str | None = None) -> hf_datasets.DatasetDict:
    require("datasets", "load data")
    import datasets

    if source.kind == "example":
        from sagefinetune.data.examples import load_example

        return load_example(source.args[0])
    if source.kind == "pandas":
        assert frames is not None
        return datasets.DatasetDict({k: _from_pandas(k, v) for k, v in frames.items()})
    if source.kind == "disk":
        loaded = datasets.load_from_disk(source.args[0])
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    if source.kind in EXTENSIONS:
        return load_files(source)
    if source.kind == "hub":
        return _load_hub(source, splits, token)
    raise ConfigError(f"unknown source kind {source.kind!r}")


def _from_pandas(split: str, frame: Any) -> Any:
    import datasets
    import pyarrow as pa

    try:
        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"the DataFrame of split {split!r} has a column that mixes value types, which Arrow cannot "
                        f"store ({exc}). Fix: make each column one type, e.g. df['label'] = df['label'].astype(str).") from exc


def load_files(source: Source) -> hf_datasets.DatasetDict:
    import datasets

    files = source.args[0]
    data_files = dict(files) if files and isinstance(files[0], tuple) else list(files)
    kwargs = dict(source.kwargs)
    _check_reader_options(source.kind, kwargs)
    try:
        loaded = datasets.load_dataset(source.kind, data_files=data_files, **kwargs)
    except Exception as exc:  # pandas, pyarrow, json and codecs errors, often wrapped by datasets
        raise translate(source.kind, files, exc) from exc
    for split, part in loaded.items():
        if len(part) == 0:
            raise DataError(f"{source.describe()}: the {split} file(s) hold no rows (a header only, or empty). "
                            "Fix: check that the file has data rows.")
    return loaded


def translate(kind: str, files: Any, exc: BaseException) -> DataError:
    """A loader error as a DataError naming the file(s), what was wrong, and the fix."""
    chain = _chain(exc)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    where = _names(files)
    unicode = next((e for e in chain if isinstance(e, UnicodeDecodeError)), None)
    if unicode is not None:
        return DataError(f"{where} is not UTF-8 text (byte {unicode.object[unicode.start:unicode.start + 1]!r} at "
                         f"position {unicode.start}). Fix: from_{kind}(..., encoding='latin-1') (or the file's encoding),"
                         " or save it as UTF-8.")
    if kind == "csv":
        return DataError(f"{where} could not be read as CSV ({_last_line(text)}); a quote that is never closed, or "
                         "rows with more fields than the header, are the usual causes. Fix: check the quoting of "
                         "that row, or pass the reader options your file needs (sep=';', quotechar=..., escapechar=...).")
    if kind == "json":
        return DataError(f"{where} is not JSON Lines or a JSON array of rows ({_last_line(text)}). "
                         "Fix: one JSON object per line ({\"text\": ..., \"label\": ...}), or use from_csv for CSV.")
    return DataError(f"{where} is not a Parquet file ({_last_line(text)}). Fix: check the file, or use the reader "
                     "that matches its format (from_csv, from_json).")


def _check_reader_options(kind: str, kwargs: Mapping[str, Any]) -> None:
    import dataclasses
    import importlib

    if not kwargs:
        return
    module = importlib.import_module(f"datasets.packaged_modules.{kind}.{kind}")
    config = next(v for k, v in vars(module).items() if k.lower() == f"{kind}config")
    known = sorted(f.name for f in dataclasses.fields(config) if f.name not in ("name", "version", "data_dir",
                                                                                  "data_files", "description"))
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        from sagefinetune.errors import did_you_mean

        raise ConfigError(f"from_{kind}: unknown reader option {unknown[0]!r}{did_you_mean(unknown[0], known)} "
                          f"Fix: use one of the {kind} reader's options: {', '.join(known)}.")


def _load_hub(source: Source, splits: Mapping[str, str] | None, token: str | None) -> hf_datasets.DatasetDict:
    import datasets

    path, name = source.args
    revision = dict(source.kwargs).get("revision")
    if path in UNAVAILABLE:
        raise DatasetUnavailableError(UNAVAILABLE[path])
    if path in HUB_COPIES:
        loaded = _load_copy(HUB_COPIES[path], name, revision, token)
    else:
        loaded = _load_hub_dataset(path, name, revision, token)
    if splits:
        missing = [s for s in splits.values() if s not in loaded]
        if missing:
            from sagefinetune.errors import did_you_mean

            near = next((s for s in loaded if s.lower() == missing[0].lower()), None)
            hint = f"; did you mean {near!r}?" if near else did_you_mean(missing[0], list(loaded))
            raise DataError(f"{path!r} has no split {missing[0]!r}{hint} It has {list(loaded)}. "
                            "Fix: splits={...} with those names.")
        return datasets.DatasetDict({ours: loaded[theirs] for ours, theirs in splits.items()})
    if "test" not in loaded and "validation" in loaded:
        return datasets.DatasetDict({"train": loaded["train"], "test": loaded["validation"]})
    return loaded


def _load_copy(copy: HubCopy, name: str | None, revision: str | None, token: str | None) -> hf_datasets.DatasetDict:
    """Every config the name reads, from the maintained copy at the pinned revision, in the original's fields."""
    import datasets

    revision = revision or copy.revision
    say(copy.line(name, revision))
    parts: dict[str, list[Any]] = {}
    for config in copy.configs_of(name):
        for split, part in _load_hub_dataset(copy.repo, config, revision, token).items():
            parts.setdefault(split, []).append(reshape(copy, config, part, split))
    return datasets.DatasetDict({split: datasets.concatenate_datasets(p) if len(p) > 1 else p[0]
                                 for split, p in parts.items()})


def _load_hub_dataset(path: str, name: str | None, revision: str | None, token: str | None) -> hf_datasets.DatasetDict:
    """``datasets.load_dataset`` on a Hub id, its errors said with the fix (and never the token)."""
    import datasets

    try:
        loaded = datasets.load_dataset(path, name, revision=revision, token=token)
    except Exception as exc:  # datasets raises many types; say what happened and what to do
        raise _hub_error(path, name, revision, token, exc) from exc
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


def _hub_error(path: str, name: str | None, revision: str | None, token: str | None, exc: BaseException) -> SagefinetuneError:
    """A ``load_dataset`` failure on the Hub as an error that names the id, config and revision and says the fix."""
    what = repr(path) + (f" (config {name!r})" if name else "") + (f" at revision {revision!r}" if revision else "")
    cause = _scrub(f"{type(exc).__name__}: {exc}", token)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))
    configs = _configs_named(text)
    if configs is not None:
        from sagefinetune.errors import did_you_mean

        if name is None:
            return ConfigError(f"{what} has several configs: {', '.join(configs)}. Fix: name one, e.g. "
                               f"Dataset.from_hub({path!r}, {configs[0]!r}).")
        return ConfigError(f"{what} has no config {name!r}{did_you_mean(name, configs) or '.'} Its configs are "
                           f"{', '.join(configs)}. Fix: Dataset.from_hub({path!r}, <one of those>).")
    if "RevisionNotFound" in text or ("Revision '" in text and "doesn't exist" in text):
        fix = "Fix: check the revision (a branch, tag or full commit sha of that dataset), or leave it out."
    elif "doesn't exist on the Hub or cannot be accessed" in text or "RepositoryNotFound" in text or "gated" in text:
        fix = ("It does not exist, or it is private or gated and this request had no token with access to it (a token "
               f"was {'passed' if token else 'found' if _stored_token() else 'not found'}). Fix: check the id; for a "
               "private dataset, log in (hf auth login), set HF_TOKEN, or pass Dataset.from_hub(..., token=...).")
    else:
        fix = (f"Fix: check the id and config name and your network (HF_HUB_OFFLINE is "
               f"{'set' if _offline() else 'not set'}), or load local files with Dataset.from_csv / from_json / "
               "from_parquet / from_disk.")
    return DatasetUnavailableError(f"could not load {what} from the Hugging Face Hub: {cause}. {fix}")


def _configs_named(text: str) -> list[str] | None:
    """The config names that 🤗 datasets lists when a config is missing or unknown, or None."""
    import re

    match = re.search(r"(?:Config name is missing|BuilderConfig '.*?' not found)[^\[]*?available(?: configs)?: \[([^\]]*)\]",
                      text, re.I | re.S)
    return re.findall(r"'([^']*)'", match.group(1)) if match else None


def _scrub(text: str, token: str | None) -> str:
    """The text with any token this process holds replaced by ``***``."""
    for secret in (token, _stored_token()):
        if secret:
            text = text.replace(secret, "***")
    return text


def _stored_token() -> str | None:
    """The token huggingface_hub would send on its own (HF_TOKEN, or the one ``hf auth login`` saved), or None."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        return os.environ.get("HF_TOKEN") or None
    return get_token()


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _names(files: Any) -> str:
    flat = [f for _, v in files for f in v] if files and isinstance(files[0], tuple) else list(files)
    return ", ".join(repr(os.path.basename(f)) if len(flat) > 1 else repr(f) for f in flat[:3]) + (
        f" and {len(flat) - 3} more" if len(flat) > 3 else "")


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1][:240] if text.strip() else "no detail"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
