"""from_s3 data: the label column is read from S3 before the training job starts (all of a small file, byte ranges
of a large one; CSV, JSON Lines, Parquet) and checked against the label map, against the moto server. The user-facing
case is a row of tests/test_bad_inputs.py; these tests hold the reading itself."""

from __future__ import annotations

import aws
import pandas as pd
import pytest

import sagefinetune as sft
from sagefinetune import Dataset, Job


def fit_sagemaker(moto, job):
    return job.fit(instance="ml.g5.xlarge", boto_session=moto.session(), progress=False, role=aws.ROLE,
                   bucket=aws.BUCKET)


def check(call, error, value):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert value in message and "Fix" in message, message
    return message


def s3_rows(kind: str, labels: list) -> bytes:
    """Rows with a ``body`` and a ``stars`` column, as the bytes of a CSV, JSON Lines or Parquet file."""
    if kind == "parquet":
        import hashlib
        import io

        buffer = io.BytesIO()  # texts that do not compress: the file is as large as its rows
        texts = [f"review {i} {hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(len(labels))]
        pd.DataFrame({"body": texts, "stars": labels}).to_parquet(
            buffer, row_group_size=max(1, len(labels) // 8))
        return buffer.getvalue()
    if kind == "csv":
        return ("body,stars\n" + "".join(f'"review {i}, {"x" * 40}",{v}\n' for i, v in enumerate(labels))).encode()
    return "".join(f'{{"body": "review {i} {"x" * 40}", "stars": {v}}}\n' for i, v in enumerate(labels)).encode()


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("large", [False, True], ids=["whole file", "byte ranges"])
def test_from_s3_labels_outside_the_map_stop_the_fit_before_the_job(moto, monkeypatch, kind, large):
    from sagefinetune.backends.sagemaker import s3_labels

    if large:  # the file is read as ranges spread over it, never whole
        monkeypatch.setattr(s3_labels, "WHOLE", 2048)
        monkeypatch.setattr(s3_labels, "RANGE", 1024)
    s3 = moto.session().client("s3")
    s3.create_bucket(Bucket="corp-data")
    # a large file: a 7 in every tenth row, so that every range (or row group) read holds some
    rows = 6000 if kind == "parquet" else 1200  # Parquet: well beyond the 64 KiB its footer read takes
    stars = [7 if i % 10 == 3 else 1 + 4 * (i % 2) for i in range(rows)] if large else [1, 5, 5, 7, 1, 2]
    s3.put_object(Bucket="corp-data", Key=f"reviews/train/part-0.{kind}", Body=s3_rows(kind, stars))
    s3.put_object(Bucket="corp-data", Key=f"reviews/test/part-0.{kind}", Body=s3_rows(kind, [1, 5, 3]))
    moto.sent.clear()
    data = Dataset.from_s3(train="s3://corp-data/reviews/train/", test="s3://corp-data/reviews/test/").columns(
        text="body", label="stars")
    job = Job.from_dataset(data).map_labels({1: "negative", 5: "positive"})
    message = check(lambda: fit_sagemaker(moto, job), sft.LabelError, "the test split: 3 (1 row)")
    assert "Read from S3 before the job started" in message and "7 (" in message
    if not large:
        assert "the train split: 2 (1 row), 7 (1 row)" in message and "(0 sampled)" in message
    else:
        assert "train: 1 file(s) (1 sampled)" in message
    header = "bytes=0-65535"  # the columns check reads the first file's header (not for Parquet)
    gets = [c for c in moto.sent.get("GetObject", []) if "/train/" in c["Key"] and c.get("Range") != header]
    if large:
        assert gets and all("Range" in c for c in gets)  # byte ranges, not the whole file
        read = sum(int(c["Range"].split("-")[1]) - int(c["Range"][6:].split("-")[0]) + 1 for c in gets)
        assert read < len(s3_rows(kind, stars)) / 2, read
    writes = [c for c in moto.sent if c in ("PutObject", "CreateMultipartUpload", "CreateBucket")]
    assert not writes and "CreateTrainingJob" not in moto.sent, sorted(moto.sent)


def test_from_s3_labels_in_the_map_launch_as_before(moto):
    s3 = moto.session().client("s3")
    s3.create_bucket(Bucket="corp-data")
    s3.put_object(Bucket="corp-data", Key="reviews/train/a.csv", Body=s3_rows("csv", [1, 5, 5.0, 1]))
    s3.put_object(Bucket="corp-data", Key="reviews/train/b.csv", Body=b'body,stars\n"good",5\n"bad","1"\n')
    data = Dataset.from_s3(train="s3://corp-data/reviews/train/").columns(text="body", label="stars")
    run = fit_sagemaker(moto, Job.from_dataset(data).map_labels({"1": "negative", "5": "positive"}))
    assert run.status == "Completed"  # 1, 5.0 and "1" are matched by their text, as the entry point matches them
