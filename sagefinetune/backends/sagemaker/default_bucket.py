"""The SDK's default bucket (``sagemaker-<region>-<account>``), with an error that says what to do when it cannot be
found: the SDK asks STS for the account and S3 for the bucket, and without credentials, or behind a proxy that
refuses, botocore's own message is about transport internals (endpoint URLs, proxy URLs, SSL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sagefinetune.errors import AWSError, CredentialsError

FIX = ("Fix: pass a bucket you may write to, fit(..., bucket='my-bucket') (or deploy(..., bucket=...)), or configure "
       "AWS credentials (aws configure / aws sso login / AWS_PROFILE) and check that STS and S3 can be reached from "
       "here (a proxy: HTTPS_PROXY and NO_PROXY).")


@contextmanager
def default_bucket_errors(region: str | None) -> Iterator[None]:
    """Translate the failures of ``Session.default_bucket()``; the botocore error stays as ``__cause__``."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CredentialsError(f"no default bucket could be found: no AWS credentials to ask AWS for the account's "
                               f"SageMaker bucket. {FIX}") from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise AWSError(f"no default bucket could be found in {region or 'this region'}: AWS answered "
                       f"{err.get('Code')} ({err.get('Message')}). {FIX}", operation="default bucket",
                       code=err.get("Code"),
                       request_id=exc.response.get("ResponseMetadata", {}).get("RequestId")) from exc
    except BotoCoreError as exc:
        raise AWSError(f"no default bucket could be found in {region or 'this region'}: {_why(exc)}. {FIX}",
                       operation="default bucket") from exc


def _why(exc: Exception) -> str:
    """What went wrong, in words, without the transport's internals."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ProxyConnectionError, SSLError

    if isinstance(exc, ProxyConnectionError):
        return f"the proxy {exc.kwargs.get('proxy_url', '')} could not be reached".replace("  ", " ")
    if isinstance(exc, SSLError):
        return "the TLS connection failed (a proxy that inspects HTTPS needs its certificate: AWS_CA_BUNDLE)"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return "AWS (STS, S3) could not be reached from this machine"
    return f"{type(exc).__name__}"
