"""Publish a run's model on the Hugging Face Hub: weights, tokenizer, config, settings, metrics and a model card.

    >>> run.push_to_hub("me/imdb-minilm", private=True)  # doctest: +SKIP
    <HubPush me/imdb-minilm (private) 10 files: https://huggingface.co/me/imdb-minilm/commit/3f1c...>

Everything is checked before the first request: the repository id, the arguments, offline mode and the token. The
token comes from ``token=`` or the standard Hub login (``hf auth login``, ``HF_TOKEN``); it goes into the
``Authorization`` header of the Hub requests and nowhere else (not into the card, a file, a log line or an error).
``HF_ENDPOINT`` names another Hub (a private deployment); it is read when you push.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagefinetune.core.deps import require
from sagefinetune.entrypoint.redaction import RedactingFilter
from sagefinetune.errors import ConfigError, CredentialsError, HubError

if TYPE_CHECKING:
    from sagefinetune.run import TrainingRun

__all__ = ["HubPush", "push_to_hub", "check_repo_id", "hub_endpoint"]

log = logging.getLogger(__name__)
log.addFilter(RedactingFilter())  # this logger's records only: a token never reaches a log line

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
CARD_FILE = "README.md"
PICTURE_FILE = "confusion_matrix.png"
_SKIPPED = {CARD_FILE, "training_args.bin"}


@dataclass(frozen=True)
class HubPush:
    """What a push made: the repository, the commit and the files it holds.

    ``str(push)`` is the commit's URL.
    """

    repo_id: str
    url: str
    commit_url: str
    commit_oid: str
    revision: str
    private: bool
    files: tuple[str, ...]

    def __str__(self) -> str:
        return self.commit_url

    def __repr__(self) -> str:
        return (f"<HubPush {self.repo_id} ({'private' if self.private else 'public'}) {len(self.files)} files: "
                f"{self.commit_url}>")


def check_repo_id(repo_id: Any) -> str:
    """``namespace/name`` with the Hub's characters (letters, digits, ``-``, ``_``, ``.``); returns it.

    Example:
        >>> check_repo_id("me/imdb-minilm")
        'me/imdb-minilm'
        >>> check_repo_id("imdb-minilm")
        Traceback (most recent call last):
        ...
        sagefinetune.errors.ConfigError: repo_id='imdb-minilm' needs a namespace: 'namespace/name'. Fix: 'your-username/imdb-minilm' (hf auth whoami shows your username).
    """
    fix = "Fix: repo_id='your-username/imdb-minilm' (letters, digits, '-', '_', '.'; at most 96 characters a part)."
    if not isinstance(repo_id, str):
        raise ConfigError(f"repo_id must be a string 'namespace/name'; got {type(repo_id).__name__} {repo_id!r}. {fix}")
    parts = repo_id.split("/")
    if len(parts) == 1 and _NAME.fullmatch(repo_id):
        raise ConfigError(f"repo_id={repo_id!r} needs a namespace: 'namespace/name'. "
                          f"Fix: 'your-username/{repo_id}' (hf auth whoami shows your username).")
    if len(parts) != 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise ConfigError(f"repo_id={repo_id!r} is not a Hub repository id 'namespace/name'. {fix}")
    if any(bad in repo_id for bad in ("--", "..")) or repo_id.endswith(".git"):
        raise ConfigError(f"repo_id={repo_id!r}: the Hub forbids '--', '..' and a '.git' ending. {fix}")
    return repo_id


def _check_options(private: Any, token: Any, commit_message: Any, revision: Any) -> None:
    if private is not None and not isinstance(private, bool):
        raise ConfigError(f"private must be True, False or None (keep the repo's visibility); got {private!r}.")
    if token is not None and (not isinstance(token, str) or not token.strip()):  # never echo a token
        raise ConfigError(f"token must be a non-empty string (a Hub access token); got {type(token).__name__}"
                          f"{' (empty)' if isinstance(token, str) else ''}. Fix: token='hf_...', or leave it out to "
                          "use the login of `hf auth login`.")
    if commit_message is not None and (not isinstance(commit_message, str) or not commit_message.strip()):
        raise ConfigError(f"commit_message must be a non-empty string; got {commit_message!r}.")
    if revision is not None and (not isinstance(revision, str)
                                 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", revision)
                                 or ".." in revision or revision.endswith(("/", ".lock"))):
        raise ConfigError(f"revision must be a branch name; got {revision!r}. Fix: revision='v1' (letters, digits, "
                          "'.', '_', '-', '/'), or leave it out to push to main.")


def hub_endpoint() -> str:
    """The Hub to talk to: ``HF_ENDPOINT`` as set now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _resolve_token(token: str | None, endpoint: str) -> str:
    if token is not None:
        return token.strip()
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise CredentialsError(
            "push_to_hub needs a Hugging Face token with write access, and none was found (no token=..., no HF_TOKEN, "
            f"no login). Fix: run `hf auth login` once, or pass token=...; tokens are made at {endpoint}/settings/tokens."
        )
    return found


def push_to_hub(run: TrainingRun, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None, revision: str | None = None) -> HubPush:
    """Push a run's model folder and a model card to a Hub model repository (created when missing).

    Args:
        run: a finished run (local, or SageMaker: its model artifact is downloaded once).
        repo_id: ``namespace/name``, e.g. ``"me/imdb-minilm"``.
        private: ``True`` makes a new repository private; ``None`` keeps an existing one as it is. An existing
            repository whose visibility differs from ``private`` is refused (nothing is uploaded).
        token: a Hub token with write access; default: the standard login (``hf auth login`` / ``HF_TOKEN``).
        commit_message: default: the run's name and its final accuracy and F1.
        revision: a branch to commit to (created from ``main`` when missing); default ``main``.

    Returns:
        A :class:`HubPush` with the repository and commit URLs.

    Raises:
        ConfigError: a bad argument, or offline mode; CredentialsError: no token; HubError: the Hub refused or could
            not be reached (the huggingface_hub error is ``__cause__``).

    Example:
        >>> push = run.push_to_hub("me/imdb-minilm", private=True)  # doctest: +SKIP
        >>> push.url  # doctest: +SKIP
        'https://huggingface.co/me/imdb-minilm'
    """
    repo_id = check_repo_id(repo_id)
    _check_options(private, token, commit_message, revision)
    require("huggingface_hub", "push a model to the Hub")
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise ConfigError("HF_HUB_OFFLINE is set, so huggingface_hub makes no requests and cannot push. Fix: unset "
                          "HF_HUB_OFFLINE (or set it to 0) before Python starts: huggingface_hub reads it when imported.")
    endpoint = hub_endpoint()
    secret = _resolve_token(token, endpoint)
    model_dir = _model_folder(run)

    from sagefinetune.runtime.modelcard import card_from_facts, confusion_png, run_facts

    facts = run_facts(run, model_dir)
    picture = confusion_png(facts.confusion)
    card = card_from_facts(facts, repo_id, endpoint=endpoint, picture=picture is not None)
    with _hub_errors("push", repo_id, endpoint, secret):
        return _push(run, repo_id, model_dir, card, picture, private=private, token=secret, endpoint=endpoint,
                     commit_message=commit_message, revision=revision)


def _model_folder(run: TrainingRun) -> Path:
    model_dir = Path(run.model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir} holds no model (config.json is missing), so there is nothing to push. "
                          "Fix: push a finished run; TrainingRun.attach(name).wait() first for a SageMaker job.")
    return model_dir


def _push(run: TrainingRun, repo_id: str, model_dir: Path, card: Any, picture: bytes | None, *, private: bool | None,
          token: str, endpoint: str, commit_message: str | None, revision: str | None) -> HubPush:
    from huggingface_hub import CommitOperationAdd, HfApi

    from sagefinetune import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="sagefinetune", library_version=__version__)
    repo_url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    is_private = bool(api.model_info(repo_id).private)
    if private is not None and is_private != private:
        raise ConfigError(
            f"{repo_id} exists and is {'private' if is_private else 'public'}, but private={private} was asked; "
            f"nothing was pushed. Fix: change its visibility on the Hub ({endpoint}/{repo_id}/settings), or push "
            f"with private={is_private} (or leave private out)."
        )
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p))
                  for p in _model_files(model_dir)]
    operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(card).encode()))
    if picture is not None:
        operations.append(CommitOperationAdd(path_in_repo=PICTURE_FILE, path_or_fileobj=picture))
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    # create_commit sends README.md to the Hub's validate-yaml first: a card the Hub would refuse stops the push
    commit = api.create_commit(repo_id, operations, commit_message=commit_message or _default_message(run),
                               revision=revision)
    files = tuple(sorted(op.path_in_repo for op in operations))
    log.info("pushed %d files to %s: %s", len(files), repo_url, commit.commit_url)
    return HubPush(repo_id=repo_id, url=str(repo_url), commit_url=commit.commit_url, commit_oid=commit.oid,
                   revision=revision or "main", private=is_private, files=files)


def _model_files(model_dir: Path) -> list[Path]:
    """Every file of the model folder but hidden ones, caches and a README (the card replaces it)."""
    from sagefinetune.backends.sagemaker.s3_content import visible_files  # the listing an S3 upload of the folder makes

    return [p for p in visible_files(model_dir) if p.relative_to(model_dir).as_posix() not in _SKIPPED]


def _default_message(run: TrainingRun) -> str:
    shown = ", ".join(f"{k} {run.metrics[k]:.4f}" for k in ("eval_accuracy", "eval_f1") if k in run.metrics)
    return f"sagefinetune: {run.name}" + (f" ({shown})" if shown else "")


# ---- errors ---------------------------------------------------------------------------------------------
def _transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of the HTTP library that huggingface_hub uses (requests, httpx or httpx2, by version)."""
    found: list[type[BaseException]] = [OSError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _http_error(exc: BaseException) -> Any:
    """The huggingface_hub HTTP error in an exception's chain (an LFS upload wraps it in a RuntimeError)."""
    from huggingface_hub.errors import HfHubHTTPError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, HfHubHTTPError):
            return seen
        seen = seen.__cause__
    return None


@contextmanager
def _hub_errors(action: str, repo_id: str, endpoint: str, token: str) -> Iterator[None]:
    """Translate huggingface_hub and transport errors into :class:`HubError` with a fix; the token is scrubbed."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        yield
    except (ConfigError, HubError):
        raise
    except OfflineModeIsEnabled as exc:
        raise ConfigError("HF_HUB_OFFLINE is set, so huggingface_hub makes no requests. Fix: unset HF_HUB_OFFLINE "
                          "(or set it to 0) before Python starts.") from exc
    except Exception as exc:
        http = _http_error(exc)
        if http is not None and getattr(http, "response", None) is not None:
            status = int(http.response.status_code)
            said = (getattr(http, "server_message", None) or "").strip()
            message = _explain(status, said, action, repo_id, endpoint)
            raise HubError(_scrub(message, token), status_code=status, repo_id=repo_id, endpoint=endpoint,
                           server_message=_scrub(said, token) or None) from exc
        if isinstance(exc, _transport_errors()):
            raise HubError(f"could not reach the Hub at {endpoint} to {action} {repo_id}: {type(exc).__name__}: "
                           f"{_scrub(str(exc), token)}. Fix: check the network (and HF_ENDPOINT, if you set it), then "
                           "push again.", repo_id=repo_id, endpoint=endpoint) from exc
        raise


def _explain(status: int, said: str, action: str, repo_id: str, endpoint: str) -> str:
    namespace = repo_id.split("/")[0]
    where = f"the Hub at {endpoint} answered {status} to the {action} of {repo_id}" + (f": {said}" if said else "")
    if status == 401:
        fix = ("log in again with `hf auth login` (or pass a valid token=...); tokens are made at "
               f"{endpoint}/settings/tokens")
        return f"{where}. The token was not accepted. Fix: {fix}."
    if status == 403:
        return (f"{where}. The token may not write to the namespace {namespace!r}. Fix: use a token with write access "
                f"to {namespace!r} ({endpoint}/settings/tokens), or push to your own namespace.")
    if status == 404:
        return (f"{where}. The repository or branch is not visible to this token. Fix: check the repo_id and revision, "
                "and that the token's account can write there.")
    if status in (409, 412):
        return f"{where}. Someone changed the repository meanwhile. Fix: push again."
    if status == 413:
        return f"{where}. A file is too large for this Hub. Fix: check the model folder for stray large files."
    if status == 429:
        return f"{where}. Too many requests. Fix: wait a minute and push again."
    if status >= 500:
        return f"{where}. The Hub had an error. Fix: push again later (status: https://status.huggingface.co)."
    return f"{where}. Fix: correct what the Hub names above and push again."


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
