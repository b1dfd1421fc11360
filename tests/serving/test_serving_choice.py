"""What serves a model by default: the int8 ONNX export when it scores within 1 point of PyTorch on the test split,
else bf16, else fp32; recorded in serving.json at deploy and followed by the local server and the SageMaker handler."""

import json
import shutil

import pytest

from sagefinetune.entrypoint import inference as handler
from sagefinetune.entrypoint import serving_choice as sc
from sagefinetune.errors import ConfigError
from sagefinetune.runtime import serving_check
from sagefinetune.runtime.export import REVISION


# ---- the choice (pure) ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accuracy, runtime, precision", [
    ({"pytorch fp32": 0.900, "onnx int8": 0.905, "pytorch bf16": 0.900}, "onnx", "int8"),    # int8 better
    ({"pytorch fp32": 0.900, "onnx int8": 0.890, "pytorch bf16": 0.800}, "onnx", "int8"),    # exactly 1 point below
    ({"pytorch fp32": 0.900, "onnx int8": 0.889, "pytorch bf16": 0.900}, "pytorch", "bf16"),  # int8 outside: bf16
    ({"pytorch fp32": 0.900, "onnx int8": None, "pytorch bf16": 0.895}, "pytorch", "bf16"),  # no onnx extra
    ({"pytorch fp32": 0.900, "onnx int8": 0.850, "pytorch bf16": 0.880}, "pytorch", "fp32"),  # both outside
    ({"pytorch fp32": 0.900, "onnx int8": 0.850, "pytorch bf16": None}, "pytorch", "fp32"),   # no native bf16
])
def test_int8_within_one_point_serves_onnx_else_bf16_else_fp32(accuracy, runtime, precision):
    chosen, why = sc.decide(accuracy)[:2], sc.decide(accuracy)[2]
    assert chosen == (runtime, precision)
    assert "within 1 point" in why and ("0.9000" in why)


def fake_folder(tmp_path, record=None, int8=True):
    folder = tmp_path / "model"
    folder.mkdir()
    if int8:
        (folder / sc.INT8_DIR).mkdir()
        (folder / sc.INT8_DIR / "model.onnx").write_bytes(b"onnx")
    if record is not None:
        (folder / sc.RECORD_FILE).write_text(json.dumps(record))
    return str(folder)


ONNX = {"runtime": "onnx", "precision": "int8", "onnx_dir": "onnx-int8", "rows": 400, "why": "within 1 point",
        "checked_at": "2026-12-06T10:00:00+00:00"}


def test_served_follows_the_record_on_a_cpu_and_keeps_pytorch_on_a_gpu(tmp_path):
    folder = fake_folder(tmp_path, ONNX)
    got = sc.served(folder, "cpu")
    assert (got.runtime, got.precision, got.folder) == ("onnx", "int8", f"{folder}/onnx-int8")
    assert "400 test rows" in got.why and "2026-12-06" in got.why
    assert sc.served(folder, "cuda").runtime == "pytorch" and "CPU path" in sc.served(folder, "cuda").why


def test_overrides_serve_pytorch_and_runtime_onnx_needs_the_export(tmp_path):
    folder = fake_folder(tmp_path, ONNX)
    assert (sc.served(folder, "cpu", runtime="pytorch").runtime, sc.served(folder, "cpu", precision="fp32").precision) \
        == ("pytorch", "fp32")
    assert "as asked" in sc.served(folder, "cpu", precision="fp32").why
    bare = fake_folder(tmp_path / "b", None, int8=False) if (tmp_path / "b").mkdir() is None else None
    with pytest.raises(ValueError, match="runtime='onnx' needs the int8 export"):
        sc.served(bare, "cpu", runtime="onnx")
    with pytest.raises(ValueError, match="runtime must be one of auto, pytorch, onnx"):
        sc.served(bare, "cpu", runtime="tensorrt")


def test_no_record_keeps_todays_pytorch_auto_and_says_so(tmp_path):
    got = sc.served(fake_folder(tmp_path, None, int8=False), "cpu")
    assert (got.runtime, got.precision) == ("pytorch", "auto") and got.why.startswith("PyTorch, precision auto, as before: no serving.json")
    fp32 = fake_folder(tmp_path / "c", {**ONNX, "runtime": "pytorch", "precision": "fp32"}) \
        if (tmp_path / "c").mkdir() is None else None
    assert (sc.served(fp32, "cpu").runtime, sc.served(fp32, "cpu").precision) == ("pytorch", "fp32")


def test_requirements_name_onnxruntime_only_while_the_export_serves(tmp_path):
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    serving_check.sync_requirements(folder, True)
    assert (folder / "code" / "requirements.txt").read_text() == serving_check.REQUIREMENT
    serving_check.sync_requirements(folder, False)
    assert not (folder / "code" / "requirements.txt").exists()
    (folder / "code" / "requirements.txt").write_text("nltk==3.9\n")  # the user's own: kept
    serving_check.sync_requirements(folder, True)
    serving_check.sync_requirements(folder, False)
    assert (folder / "code" / "requirements.txt").read_text() == "nltk==3.9\n"


def test_a_folder_without_a_test_split_gets_no_record(tmp_path):
    folder = tmp_path / "hub-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    assert serving_check.check_serving(folder) is None and not (folder / sc.RECORD_FILE).exists()


def test_the_local_endpoint_refuses_an_unknown_runtime(tmp_path):
    from sagefinetune.serving.local import start_server

    with pytest.raises(ConfigError, match="runtime must be one of auto, pytorch, onnx; got 'trt'"):
        start_server(tmp_path, runtime="trt")


def test_a_sagemaker_endpoint_is_told_the_runtime_asked_for():
    from sagefinetune.plans.deploy import ModelRef, environment

    model = ModelRef("folder", "/tmp/model", None, True, "demo")
    assert environment(model, "realtime", "us-east-1", None, None, "pytorch")["SFT_RUNTIME"] == "pytorch"
    assert "SFT_RUNTIME" not in environment(model, "realtime", "us-east-1", None)  # auto: what serving.json chose
    with pytest.raises(ConfigError, match="runtime must be one of auto, pytorch, onnx; got 'int8'"):
        environment(model, "realtime", "us-east-1", None, None, "int8")


# ---- a real trained model ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_copy(trained_run, tmp_path_factory):
    """The shared trained run's model folder and test split, copied without what the check wrote there (the check
    writes into the model folder)."""
    root = tmp_path_factory.mktemp("serving-choice") / "run"
    shutil.copytree(trained_run.model_dir, root / "model",
                    ignore=shutil.ignore_patterns(sc.RECORD_FILE, sc.INT8_DIR, "requirements.txt"))
    shutil.copytree(trained_run.run_dir / "input" / "data", root / "input" / "data")
    return root


@pytest.mark.slow
def test_the_check_records_its_choice_once(run_copy):
    model = run_copy / "model"
    record = serving_check.check_serving(model)
    saved = json.loads((model / "serving.json").read_text())
    assert saved == record and record["rows"] > 0 and record["model_sha256"] == serving_check.weights_hash(model)
    assert set(record["accuracy"]) == {"pytorch fp32", "onnx int8", "pytorch bf16"} and record["checked_at"]
    assert (record["runtime"], record["precision"])[:2] == sc.decide(record["accuracy"])[:2]
    assert (model / "onnx-int8" / "model.onnx").is_file() == (record["runtime"] == "onnx")
    assert ("onnxruntime" in (model / "code" / "requirements.txt").read_text()) if record["runtime"] == "onnx" else True
    assert serving_check.check_serving(model)["checked_at"] == record["checked_at"]  # cached: the weights are the same
    if record["runtime"] == "onnx":  # an export of an older graph serves slower: the check exports it again
        settings_file = model / "onnx-int8" / "sagefinetune.json"
        current = json.loads(settings_file.read_text())
        for older_revision in (None, 2):  # as sagefinetune.json read before revisions; before the first-token edit
            older = {**current, "onnx": {k: v for k, v in current["onnx"].items() if k != "revision"}}
            if older_revision:
                older["onnx"]["revision"] = older_revision
            settings_file.write_text(json.dumps(older))
            assert not serving_check._export_is_current(model, record)
        serving_check.check_serving(model)  # exported once more (each export takes a worker about 15 s)
        assert json.loads(settings_file.read_text())["onnx"]["revision"] == REVISION


@pytest.mark.slow
def test_the_archive_carries_the_record_the_export_and_onnxruntime(run_copy):
    from sagefinetune.backends.sagemaker.model_archive import entries

    model = run_copy / "model"
    record = serving_check.check_serving(model)
    names = {name: path for name, path in entries(model, add_handler=False)}
    assert "serving.json" in names and "code/serving_choice.py" in names and "code/inference.py" in names
    if record["runtime"] == "onnx":
        assert "onnx-int8/model.onnx" in names and "onnxruntime" in names["code/requirements.txt"].read_text()
    else:
        assert not any(n.startswith("onnx-int8/") for n in names) and "code/requirements.txt" not in names


@pytest.mark.slow
def test_the_handler_serves_the_int8_export_where_the_record_says_so(run_copy, monkeypatch, capsys):
    model = run_copy / "model"
    serving_check.check_serving(model)
    saved = json.loads((model / "serving.json").read_text())
    (model / "serving.json").write_text(json.dumps({**saved, "runtime": "onnx", "precision": "int8",
                                                    "onnx_dir": "onnx-int8"}))
    if not (model / "onnx-int8" / "model.onnx").is_file():
        # the check removed it
        pytest.skip("the int8 export was outside 1 point on this model")
    texts = ["The striker scored twice as the club won the cup final.", "Shares fell after the profit warning."]
    onnx = handler.model_fn(str(model))
    assert isinstance(onnx.model, sc.OnnxModel) and onnx.describe() == "cpu, ONNX Runtime int8"
    assert "serving ONNX Runtime int8" in capsys.readouterr().out
    monkeypatch.setenv("SFT_RUNTIME", "pytorch")
    torch_model = handler.model_fn(str(model))
    assert not isinstance(torch_model.model, sc.OnnxModel)
    assert [r.argmax() for r in onnx.probabilities(texts)] == [r.argmax() for r in torch_model.probabilities(texts)]
    # one input per int8 pass (handler.INT8_PASS): a text's scores do not depend on what shares the call
    same_length = [f"The striker scored twice as the {w} won the cup final." for w in ("club", "team", "city", "side")]
    assert len({len(onnx.tokenizer(t)["input_ids"]) for t in same_length}) == 1  # they would share a pass
    together = onnx.probabilities(same_length)
    assert (together == [onnx.probabilities([t])[0] for t in same_length]).all()


@pytest.mark.slow
def test_run_predictor_answers_as_the_endpoint_with_runtime_auto(run_copy):
    import sagefinetune as sft
    from sagefinetune.endpoint import deploy_local

    record = serving_check.check_serving(run_copy / "model")
    run = sft.TrainingRun.from_run_dir(run_copy)
    texts = ["The striker scored twice as the club won the cup final.", "Shares fell after the profit warning.",
             "A new phone chip doubles battery life."]
    auto = run.predictor(runtime="auto")
    assert auto.runtime.name == record["runtime"] and run.predictor().runtime.name == "pytorch"
    with deploy_local(run_copy / "model", workers=1) as ep:
        assert ep.predict(texts, all_scores=True) == auto.predict(texts, all_scores=True)  # to the last digit
    if record["runtime"] == "onnx":
        assert run.predictor(runtime="onnx").runtime.name == "onnx"
        with pytest.raises(sft.ConfigError, match="runs on the CPU"):
            run.predictor(runtime="onnx", device="cuda")
    with pytest.raises(sft.ConfigError, match="runtime must be one of"):
        run.predictor(runtime="tensorrt")
    saved = (run_copy / "model" / "serving.json").read_text()
    try:  # a record that chose PyTorch fp32 (bf16 more than 1 point worse): the endpoint computes in fp32, and so does auto
        (run_copy / "model" / "serving.json").write_text(json.dumps({**record, "runtime": "pytorch", "precision": "fp32"}))
        assert run.predictor(runtime="auto").runtime.precision == "fp32"
    finally:
        (run_copy / "model" / "serving.json").write_text(saved)


@pytest.mark.slow
def test_deploy_says_what_it_serves_and_the_override_wins(run_copy, capsys):
    from sagefinetune.endpoint import deploy_local

    record = serving_check.check_serving(run_copy / "model")
    with deploy_local(run_copy / "model", workers=1) as ep:
        answer = ep.predict(["The striker scored twice as the club won the cup final."])
        log = ep.log_path.read_text()
    out = capsys.readouterr().out
    assert "[sagefinetune] serving " in out and record["why"] in out and "Override: deploy(runtime='pytorch')" in out
    assert ("ONNX Runtime int8" in log) == (record["runtime"] == "onnx") and answer[0]["label"]
    # an ONNX batch runs as one pass per input: it takes at most 4 inputs unless told (server.default_max_batch)
    assert f"max batch {4 if record['runtime'] == 'onnx' else 32}," in log
    with deploy_local(run_copy / "model", workers=1, runtime="pytorch") as ep:
        assert ep.predict(["Shares fell after the profit warning."])[0]["label"]
        log = ep.log_path.read_text()
    assert "ONNX Runtime" not in log and "as asked (runtime='pytorch'" in capsys.readouterr().out
    assert "max batch 32," in log


def test_a_local_run_deployed_to_sagemaker_is_checked_first_and_says_what_the_handler_serves(tmp_path, monkeypatch,
                                                                                              capsys):
    from sagefinetune import deploy

    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "requirements.txt").write_text(serving_check.REQUIREMENT)
    record = {"runtime": "onnx", "precision": "int8", "why": "ONNX int8 accuracy 0.79 vs PyTorch fp32 0.80: within 1 "
              "point", "rows": 500}
    monkeypatch.setattr(serving_check, "check_serving", lambda f: record)
    deploy.check_folder(folder, {"instance": "ml.m5.xlarge"})
    err = capsys.readouterr().err
    assert "on a CPU instance the handler serves the int8 ONNX export: ONNX int8 accuracy 0.79" in err
    assert "A GPU instance serves PyTorch. Override: deploy(..., runtime='pytorch')" in err
    deploy.check_folder(folder, {"instance": "ml.m5.xlarge", "runtime": "pytorch"})
    assert "serves PyTorch as asked" in capsys.readouterr().err
    assert not (folder / "code" / "requirements.txt").exists()  # no pip install of onnxruntime at model load
