"""The design card's call on real data: amazon_reviews_multi, star ratings mapped to three classes, on SageMaker.

    python examples/real_data.py                                   # the plan: pure, nothing is read or billed
    python examples/real_data.py --hub https://huggingface.co      # and a small sample of the rows, read from the Hub
    python examples/real_data.py --hub https://huggingface.co --language en --rows 500

The name resolves to the maintained copy mteb/AmazonReviewsClassification at a pinned revision, in the original's
fields (review_body, stars 1..5, language): see docs/real-data.rst. The plan (ml.p3.16xlarge, managed spot) shows the
image, the processes, how the data reaches S3, and the time and cost estimate from the copy's published sizes. With
--hub, a seeded sample is read from that endpoint (it must serve the copy: the Hub, a mirror, or the tests' local
Hub), checked and mapped to the classes, and a few rows are printed as the job would train on them. The sample is
drawn after the splits are downloaded: every language's files unless --language names one. Launching is
train_on_sagemaker.py's business: the same Job, .fit(...) instead of .plan(...).
"""

from __future__ import annotations

import argparse
import os

CARD = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", metavar="URL", help="read a sample from this Hub endpoint (e.g. https://huggingface.co)")
    parser.add_argument("--language", default=None, help="one of de en es fr ja zh (default: all six)")
    parser.add_argument("--rows", type=int, default=300, help="train rows to sample (test: a third of it)")
    args = parser.parse_args()
    if args.hub:  # before huggingface_hub is imported: it reads the endpoint once (sagefinetune imports it only to read)
        os.environ["HF_ENDPOINT"] = args.hub.rstrip("/")
        os.environ["HF_HUB_OFFLINE"] = "0"

    import sagefinetune as sft

    job = sft.Job.from_hub("amazon_reviews_multi", args.language).map_labels(CARD)
    print(job.plan(instance="ml.p3.16xlarge", nodes=1, spot=True))
    if not args.hub:
        print("\nno rows read: pass --hub https://huggingface.co to read a sample")
        return

    sample = job.dataset.sample(train=args.rows, test=max(1, args.rows // 3), validation=max(1, args.rows // 3), seed=0)
    prepared = sft.Job.from_dataset(sample).map_labels(CARD).prepare()  # read, checked, mapped: what fit() uploads
    names = prepared.label_map.names_
    print("\nsample:", ", ".join(f"{split} {rows} rows" for split, rows in prepared.sizes().items()))
    for split, table in prepared.tables.items():
        ids = table["label"].to_pylist()
        print(f"  {split:<10} " + "  ".join(f"{name} {ids.count(i)}" for i, name in enumerate(names)))
    train = prepared.tables["train"]
    for text, label in list(zip(train["text"].to_pylist(), train["label"].to_pylist()))[:3]:
        print(f"  {names[label]:<8} | {' '.join(text.split())[:90]}")


if __name__ == "__main__":
    main()
