"""AWS error translation: botocore errors become AWSError / CredentialsError at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sagefinetune.errors import AWSError, CredentialsError

__all__ = ["aws_errors"]


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Translate botocore errors into AWSError / CredentialsError; the original stays as __cause__."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except S3UploadFailedError as exc:
        cause = exc.__context__ if isinstance(exc.__context__, ClientError) else None
        code = cause.response.get("Error", {}).get("Code") if cause is not None else None
        raise AWSError(f"{operation} failed: {exc}", operation=operation, code=code) from exc
    except NoCredentialsError as exc:
        raise CredentialsError(
            f"{operation}: no AWS credentials. Fix: aws configure / aws sso login, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ) from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        raise AWSError(
            f"{operation} failed: {err.get('Code')}: {err.get('Message')}",
            operation=operation,
            code=err.get("Code"),
            request_id=meta.get("RequestId"),
        ) from exc
    except BotoCoreError as exc:
        raise AWSError(f"{operation} failed: {exc}", operation=operation) from exc

