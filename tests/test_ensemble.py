"""Ensembles: averaging and voting by hand, selection that never reads test rows, the mix-model rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinlib import ensemble, members, metrics
from skinlib.ensemble import Specialist, fit_weights, greedy_forward, hard_vote, mix_model, soft_average, top_k
from skinlib.registry import RunRecorder

A = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
B = np.array([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
C = np.array([[0.5, 0.4, 0.1], [0.3, 0.4, 0.3]])


def test_soft_average_by_hand():
    np.testing.assert_allclose(soft_average([A, B]), [[0.4, 0.5, 0.1], [0.15, 0.3, 0.55]])
    np.testing.assert_allclose(soft_average([A, B], [3, 1]), [[0.5, 0.4, 0.1], [0.175, 0.4, 0.425]])
    with pytest.raises(ValueError, match="non-negative weights"):
        soft_average([A, B], [1, -1])


def test_hard_vote_by_hand_and_the_tie_goes_to_the_lowest_class():
    votes = hard_vote([A, B, C])            # image 0: 0, 1, 0 -> class 0; image 1: 1, 2, 1 -> class 1
    np.testing.assert_allclose(votes, [[2 / 3, 1 / 3, 0], [0, 2 / 3, 1 / 3]])
    tie = hard_vote([A, B])                 # image 0: classes 0 and 1 tie -> 0; image 1: 1 and 2 tie -> 1
    assert tie.argmax(1).tolist() == [0, 1]
    reverse = hard_vote([B, A])             # member order does not matter
    assert reverse.argmax(1).tolist() == [0, 1]


def test_fitted_weights_favour_the_member_that_is_right():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.full((200, 3), 0.1)
    good[np.arange(200), y] = 0.8
    noise = rng.dirichlet(np.ones(3), 200)
    w = fit_weights([noise, good], y)
    assert w.sum() == pytest.approx(1) and (w >= 0).all() and w[1] > 0.9


def fake_members(seed=0, n=60, k=7, m=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    out = {}
    for i in range(m):
        p = rng.dirichlet(np.ones(k), n)
        p[np.arange(n), y] += rng.uniform(0, 0.3 * (i + 1), n)     # later members are better
        out[f"m{i}"] = p / p.sum(1, keepdims=True)
    return y, out


def test_label_metrics_equal_scikit_learns():
    y, val = fake_members(n=200)
    for p in val.values():
        fast = metrics.label_metrics(y, p.argmax(1))
        full = metrics.classification_metrics(y, p)
        for key, value in fast.items():
            assert value == pytest.approx(full[key]), key
    y = np.array([0, 0, 2, 2, 2])                 # class 1 never true, predicted once; class 2 never predicted
    fast = metrics.label_metrics(y, np.array([0, 1, 0, 0, 0]))
    full = metrics.classification_metrics(y, np.eye(3)[[0, 1, 0, 0, 0]])
    assert fast == pytest.approx({k: full[k] for k in fast})


def test_top_k_and_greedy_selection_use_validation_scores():
    y, val = fake_members()
    for p in val.values():
        assert ensemble._balanced_accuracy(y, p) == pytest.approx(metrics.classification_metrics(y, p)["balanced_accuracy"])
    scores = {n: ensemble._balanced_accuracy(y, p) for n, p in val.items()}
    assert top_k(val, y, 2) == sorted(scores, key=scores.get, reverse=True)[:2]
    chosen = greedy_forward(val, y)
    assert chosen[0] == top_k(val, y, 1)[0] and len(set(chosen)) == len(chosen)
    assert greedy_forward(val, y, max_members=1) == chosen[:1]


def write_member(root, name, image_ids, labels, proba_by_split):
    rec = RunRecorder("transfer", name, {"backbone": name}, root=root)
    rows = []
    for split, (ids, y, p) in proba_by_split.items():
        frame = pd.DataFrame(p, columns=[f"p_{c}" for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")])
        frame.insert(0, "label", y)
        frame.insert(0, "group", [f"L-{i}" for i in ids])
        frame.insert(0, "split", split)
        frame.insert(0, "image_id", ids)
        rows.append(frame)
    rec.predictions(pd.concat(rows, ignore_index=True))
    rec.metrics({})
    rec.finish()


def select_everything(root):
    """What notebook 08 chooses: top 3, greedy members, fitted weights, all from validation."""
    runs = [("transfer", f"m{i}") for i in range(5)]
    mem = members.load_members(runs, root)
    val, y_val = mem.proba["val"], mem.labels["val"]
    top = top_k(val, y_val, 3)
    greedy = greedy_forward(val, y_val)
    weights = fit_weights(mem.stack("val"), y_val)
    return top, greedy, weights


def test_selection_never_reads_test_rows(tmp_path):
    y_val, val = fake_members(seed=1)
    y_test, test = fake_members(seed=2)
    ids_val = [f"v{i:03d}" for i in range(len(y_val))]
    ids_test = [f"t{i:03d}" for i in range(len(y_test))]
    for name in val:
        write_member(tmp_path / "a", name, None, None, {"val": (ids_val, y_val, val[name]), "test": (ids_test, y_test, test[name])})
        flipped = test[name][:, ::-1]                                 # test predictions changed completely
        shuffled_labels = np.roll(y_test, 7)
        write_member(tmp_path / "b", name, None, None,
                     {"val": (ids_val, y_val, val[name]), "test": (ids_test, shuffled_labels, flipped)})
    top_a, greedy_a, w_a = select_everything(tmp_path / "a")
    top_b, greedy_b, w_b = select_everything(tmp_path / "b")
    assert top_a == top_b and greedy_a == greedy_b
    np.testing.assert_array_equal(w_a, w_b)
    # and the test predictions did differ: the ensembles score differently on them
    a = members.load_members([("transfer", n) for n in val], tmp_path / "a")
    b = members.load_members([("transfer", n) for n in val], tmp_path / "b")
    assert not np.allclose(soft_average(a.stack("test")), soft_average(b.stack("test")))


def test_load_members_refuses_runs_on_different_images(tmp_path):
    y, val = fake_members(n=10)
    write_member(tmp_path, "m0", None, None, {"val": ([f"a{i}" for i in range(10)], y, val["m0"])})
    write_member(tmp_path, "m1", None, None, {"val": ([f"b{i}" for i in range(10)], y, val["m1"])})
    with pytest.raises(ValueError, match="transfer/m0 and transfer/m1 predicted different val images"):
        members.load_members([("transfer", "m0"), ("transfer", "m1")], tmp_path, splits=("val",))


def test_paired_bootstrap_sees_a_real_gain_and_no_gain():
    y, val = fake_members(n=300)
    better = ensemble.one_hot(y)                                       # always right
    gain = ensemble.paired_bootstrap_gain(y, better, val["m0"], np.arange(len(y)) // 3, n_boot=200)
    assert gain["gain"] > 0 and gain["low"] > 0 and gain["p_not_better"] == 0
    for metric in ("balanced_accuracy", "f1_macro", "auc_macro"):
        exact = ensemble.paired_bootstrap_gain(y, better, val["m0"], None, metric=metric, n_boot=0)["gain"]
        full = metrics.classification_metrics(y, better)[metric] - metrics.classification_metrics(y, val["m0"])[metric]
        assert exact == pytest.approx(full)
    same = ensemble.paired_bootstrap_gain(y, val["m0"], val["m0"], None, n_boot=50)
    assert same["gain"] == 0 and same["low"] == 0 and same["p_not_better"] == 1


def test_paired_bootstrap_of_binary_probabilities_compares_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    sharp, vague = y + rng.normal(0, 0.3, 200), y + rng.normal(0, 1.5, 200)
    gain = ensemble.paired_bootstrap_gain(y, sharp, vague, np.arange(200) // 2, metric="auc", n_boot=200)
    full = metrics.binary_metrics(y, sharp)["auc"] - metrics.binary_metrics(y, vague)["auc"]
    assert gain["gain"] == pytest.approx(full) and gain["low"] > 0 and gain["p_not_better"] == 0
    with pytest.raises(ValueError, match="binary runs compare by 'auc'"):
        ensemble.paired_bootstrap_gain(y, sharp, vague, None)


CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def test_mix_model_rule_on_constructed_probabilities():
    general = np.array([
        [0.0, 0.0, 0.0, 0.0, 0.3, 0.6, 0.1],    # nv at 0.6; mel-vs-nv says mel at 0.9 -> mel
        [0.0, 0.0, 0.0, 0.0, 0.1, 0.8, 0.1],    # nv at 0.8; specialist says mel at 0.7 -> stays nv
        [0.1, 0.7, 0.1, 0.0, 0.0, 0.1, 0.0],    # bcc at 0.7; akiec-vs-bcc says akiec at 0.75 -> akiec
        [0.1, 0.0, 0.5, 0.0, 0.4, 0.0, 0.0],    # bkl at 0.5; mel-vs-bkl says bkl at 0.95 -> bkl (the specialist agrees)
        [0.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.0],    # mel: no specialist is triggered by mel -> mel
        [0.0, 0.0, 0.0, 0.0, 0.4, 0.6, 0.0],    # nv at 0.6 and the specialist says mel at exactly 0.6 -> tie keeps nv
    ])
    specialists = [
        Specialist("nv", ("mel", "nv"), np.array([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.5, 0.5], [0.99, 0.01], [0.6, 0.4]])),
        Specialist("bcc", ("akiec", "bcc"), np.array([[0.5, 0.5]] * 2 + [[0.75, 0.25]] + [[0.99, 0.01]] * 3)),
        Specialist("bkl", ("mel", "bkl"), np.array([[0.99, 0.01]] * 3 + [[0.05, 0.95]] + [[0.99, 0.01]] * 2)),
    ]
    proba, decided = mix_model(general, specialists)
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_allclose(proba[0], [0, 0, 0, 0, 0.9, 0.1, 0])           # the specialist's answer, on its classes
    np.testing.assert_allclose(proba[1], general[1])
    assert [CLASSES[i] for i in proba.argmax(1)] == ["mel", "nv", "akiec", "bkl", "mel", "nv"]
    assert decided.tolist() == ["nv", "", "bcc", "bkl", "", ""]
    with pytest.raises(ValueError, match="one specialist per trigger"):
        mix_model(general, specialists + [specialists[0]])
    with pytest.raises(ValueError, match="expected \\(6, 2\\)"):
        mix_model(general, [Specialist("nv", ("mel", "nv"), np.ones((5, 2)))])


def test_binary_average_and_binary_runs(tmp_path):
    np.testing.assert_allclose(ensemble.binary_average([np.array([0.2, 0.9]), np.array([0.4, 0.5])]), [0.3, 0.7])
    rec = RunRecorder("binary", "dino-mel", {"backbone": "vit_small_patch16_224.dino"}, root=tmp_path)
    rec.predictions(pd.DataFrame({"image_id": ["a"], "split": ["val"], "label": [1], "p_mel": [0.7]}))
    rec.metrics({"val": {"auc": 0.8}})
    rec.finish()
    write_member(tmp_path, "seven", None, None, {"val": (["a"], [0], np.full((1, 7), 1 / 7))})
    runs = members.binary_runs(tmp_path)
    assert runs[["run", "column", "backbone"]].values.tolist() == [["dino-mel", "p_mel", "vit_small_patch16_224.dino"]]


def test_registry_runs_of_one_split_name_the_runs_left_out(tmp_path, capsys):
    y, val = fake_members(n=10)
    ids = [f"a{i}" for i in range(10)]
    for run, split in (("lesion", "lesion-75-10-15-seed0"), ("image", "image-75-10-15-seed0"), ("unnamed", None)):
        rec = RunRecorder("custom_cnn", run, {"split_name": split} if split else {}, root=tmp_path)
        rec.predictions(pd.DataFrame({"image_id": ids, "split": "val", "label": y, **{f"p_{c}": 1 / 7 for c in CLASSES}}))
        rec.finish()
    assert members.registry_runs(tmp_path)["run"].tolist() == ["image", "lesion", "unnamed"]
    assert "left out" not in capsys.readouterr().out
    runs = members.registry_runs(tmp_path, split_name="lesion-75-10-15-seed0")
    assert runs["run"].tolist() == ["lesion", "unnamed"] and "split_name" not in runs
    assert ("1 run(s) on another split than 'lesion-75-10-15-seed0' left out: custom_cnn/image (image-75-10-15-seed0)"
            in capsys.readouterr().out)


def test_registry_runs_keeps_only_seven_class_runs_on_all_images(tmp_path):
    y, val = fake_members(n=10)
    ids = [f"a{i}" for i in range(10)]
    write_member(tmp_path, "m0", None, None, {"val": (ids, y, val["m0"])})
    rec = RunRecorder("transfer", "subset", {"localization": "lower extremity"}, root=tmp_path)
    rec.predictions(pd.DataFrame({"image_id": ids, "split": "val", "label": y, **{f"p_{c}": 1 / 7 for c in CLASSES}}))
    rec.finish()
    rec = RunRecorder("transfer", "specialist", {"classes": ["mel", "nv"]}, root=tmp_path)
    rec.predictions(pd.DataFrame({"image_id": ids, "split": "val", "label": 0, "p_mel": 0.5, "p_nv": 0.5}))
    rec.finish()
    RunRecorder("explanations", "gradcam", {}, root=tmp_path).finish()          # no predictions at all
    RunRecorder("ensembles", "average", {}, root=tmp_path).finish()
    runs = members.registry_runs(tmp_path)
    assert runs[["experiment", "run"]].values.tolist() == [["transfer", "m0"]]
    assert members.registry_specialists(tmp_path).empty                  # no model kept: not usable
    for name in ("model.safetensors", "model.json"):
        (tmp_path / "transfer" / "specialist" / name).write_text("{}")
    found = members.registry_specialists(tmp_path)
    assert found[["trigger", "run"]].values.tolist() == [["nv", "specialist"]] and found["classes"][0] == ["mel", "nv"]
    assert len(members.registry_specialists(tmp_path, split_name="lesion-75-10-15-seed0")) == 1   # no split recorded
    rec = RunRecorder("transfer", "specialist", {"classes": ["mel", "nv"], "split_name": "image-75-10-15-seed0"},
                      root=tmp_path)
    rec.predictions(pd.DataFrame({"image_id": ids, "split": "val", "label": 0, "p_mel": 0.5, "p_nv": 0.5}))
    rec.finish()
    for name in ("model.safetensors", "model.json"):
        (tmp_path / "transfer" / "specialist" / name).write_text("{}")
    assert len(members.registry_specialists(tmp_path)) == 1
    assert members.registry_specialists(tmp_path, split_name="lesion-75-10-15-seed0").empty       # another split


def test_members_and_the_general_model_are_taken_by_name():
    """08 pins a study's members and general model by name (study E's trio, ResNet50 RGB aug); a name that is no
    candidate, a wrong count or a repeat is refused, listing the candidates."""
    candidates = ["transfer/E-resnet50-rgb-aug", "transfer/E-xception", "transfer/E-inception-resnet-v2",
                  "transfer/E-vgg19"]
    trio = ["transfer/E-resnet50-rgb-aug", "transfer/E-xception", "transfer/E-inception-resnet-v2"]
    assert members.named_members(trio, candidates, "top_members", count=3) == trio
    assert members.named_members("transfer/E-resnet50-rgb-aug", candidates, "general_run") == [trio[0]]
    with pytest.raises(ValueError, match=r"top_members: \['transfer/E-resnet50-gray-aug'\] is not among the candidate "
                                         r"members on this split: transfer/E-resnet50-rgb-aug, transfer/E-xception"):
        members.named_members(["transfer/E-resnet50-gray-aug", *trio[1:]], candidates, "top_members", count=3)
    with pytest.raises(ValueError, match="top_members names 2 run\\(s\\) where 3 are needed"):
        members.named_members(trio[:2], candidates, "top_members", count=3)
    with pytest.raises(ValueError, match="names a run twice"):
        members.named_members([trio[0], trio[0], trio[1]], candidates, "top_members", count=3)
