"""Reading a SageMaker pipeline definition in tests: its steps, its references, and its steps' requests made concrete.

``resolve`` replaces the definition's expressions (``{"Get": ...}``, ``Std:Join``, ``Std:JsonGet``) with the values
SageMaker would put there during an execution, so that a step's arguments can be checked against the API's own
request shapes (botocore's service model) and sent to the moto server as the pipeline would send them.
"""

from __future__ import annotations

from typing import Any

#: a step type -> the API operation SageMaker calls for it, and the name field the pipeline fills in
OPERATIONS = {
    "Training": ("CreateTrainingJob", {"TrainingJobName": "pipelines-abc-Train-1"}),
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "pipelines-abc-Evaluate-1"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {"ModelName": "pipelines-abc-model"}),
    "EndpointConfig": ("CreateEndpointConfig", {}),
    "Endpoint": ("CreateEndpoint", {}),
}


def all_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, those inside conditions included, in definition order."""
    out = []
    for step in steps:
        out.append(step)
        if step["Type"] == "Condition":
            out += all_steps(step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []))
    return out


def references(value: Any) -> list[str]:
    """Every ``{"Get": ...}`` reference in a structure."""
    if isinstance(value, dict):
        found = [value["Get"]] if set(value) == {"Get"} else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def resolve(value: Any, values: dict[str, Any]) -> Any:
    """The structure with each expression replaced by ``values[<reference or 'JsonGet:<path>'>]``."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            return values[value["Get"]]
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return join["On"].join(str(resolve(v, values)) for v in join["Values"])
        if set(value) == {"Std:JsonGet"}:
            return values[f"JsonGet:{value['Std:JsonGet']['Path']}"]
        return {k: resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    return value


def validate(step: dict[str, Any], values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The step's request as SageMaker would send it; raises botocore's ParamValidationError when the API would not
    accept it."""
    import botocore.session
    from botocore.validate import validate_parameters

    operation, names = OPERATIONS[step["Type"]]
    request = {**resolve(step["Arguments"], values), **names}
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation)
    validate_parameters(request, model.input_shape)
    return operation, request


def needs(module: str, reason: str) -> None:
    """Skip unless ``module`` is part of the sagefinetune under test (an editable install elsewhere can lend its own);
    under CI=true fail instead (conftest.skip_or_fail)."""
    import importlib.util
    from pathlib import Path

    from conftest import skip_or_fail

    import sagefinetune

    spec = importlib.util.find_spec(module)
    home = Path(sagefinetune.__file__).resolve().parent
    if spec is None or spec.origin is None or not Path(spec.origin).resolve().is_relative_to(home):
        skip_or_fail(reason)
