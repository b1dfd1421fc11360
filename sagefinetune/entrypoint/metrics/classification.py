"""Classification metrics as an 🤗 evaluate module that loads by path, offline and in network-isolated jobs.

evaluate.load("<dir>/classification.py")               # single-label: accuracy, macro f1/precision/recall, mcc
evaluate.load("<dir>/classification.py", "multilabel") # multi-hot rows: micro/macro f1, precision, recall, subset accuracy
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

_DESCRIPTION = "Accuracy, F1, precision, recall and Matthews correlation for text classification (scikit-learn)."
_INPUTS = """
Args:
    predictions: class ids (single-label) or multi-hot lists (config "multilabel").
    references: the same shape as predictions.
Returns:
    single-label: accuracy, f1, precision, recall (macro averages) and mcc.
    multilabel: f1_micro, f1_macro, precision_micro, recall_micro, subset_accuracy.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class Classification(evaluate.Metric):
    def _info(self):
        if self.config_name == "multilabel":
            features = datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            )
        else:
            features = datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_INPUTS, features=features
        )

    def _compute(self, predictions, references):
        if self.config_name == "multilabel":
            return {
                "f1_micro": float(f1_score(references, predictions, average="micro", zero_division=0)),
                "f1_macro": float(f1_score(references, predictions, average="macro", zero_division=0)),
                "precision_micro": float(precision_score(references, predictions, average="micro", zero_division=0)),
                "recall_micro": float(recall_score(references, predictions, average="micro", zero_division=0)),
                "subset_accuracy": float(accuracy_score(references, predictions)),
            }
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
            "precision": float(precision_score(references, predictions, average="macro", zero_division=0)),
            "recall": float(recall_score(references, predictions, average="macro", zero_division=0)),
            "mcc": float(matthews_corrcoef(references, predictions)),
        }
