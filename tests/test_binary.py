"""Binary tasks (notebook 07): split, metadata pipeline, fusion model, thresholds, the synthetic archive's signal."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from skinlib import binary, evaluation, inputs, metadata, metrics, registry
from skinlib.subtypes import SubtypesUnavailable, malignant_subtypes, subtype_table
from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache
from skinlib.data.layouts import detect_layouts
from skinlib.data.splits import groups_of
from skinlib.models import create_fusion, create_image_model, create_metadata_mlp
from skinlib.train import FitConfig, fit, predict
from skinlib.data.transforms import Preprocess

from conftest import write_jpeg


def archive(root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_catalog(root, layout="isic_archive")


@pytest.fixture(scope="module")
def archive_table(synthetic_small):
    return binary.with_target(archive(synthetic_small), "isic_archive")


@pytest.mark.parametrize("task", ["melanoma", "isic_archive"])
def test_binary_split_keeps_the_positive_rate_and_is_group_disjoint(synthetic_small, task):
    table = binary.with_target(archive(synthetic_small) if task == "isic_archive"
                               else load_catalog(synthetic_small, layout="ham10000"), task)
    split = binary.binary_split(table, task, (0.7, 0.15, 0.15), seed=0)
    merged = table.merge(split, on="image_id")
    rates = binary.positive_rates(merged)
    overall = merged[binary.TARGET].mean()
    assert list(rates.index) == ["train", "val", "test"]
    assert (abs(rates["rate"] - overall) < 0.06).all(), rates
    assert abs(rates.loc["train", "images"] / len(merged) - 0.7) < 0.05
    groups = groups_of(merged)                                   # lesion and patient, linked
    assert (pd.Series(merged["split"].to_numpy()).groupby(groups).nunique() == 1).all()
    if task == "isic_archive":
        assert merged.groupby("patient_id")["split"].nunique().max() == 1
    again = binary.binary_split(table, task, (0.7, 0.15, 0.15), seed=0)     # saved: read back, identical
    assert again.equals(split) and again.attrs["manifest"]["stratify"] == binary.TARGET


def test_imputation_statistics_come_from_train_rows_only(archive_table):
    table = archive_table.assign(split=np.where(np.arange(len(archive_table)) % 5 == 0, "test", "train"))
    numeric, categorical = metadata.columns(table)
    assert numeric == ["age", "size_mm"] and categorical == ["sex"]
    train = table[table["split"] == "train"]
    fitted = metadata.MetadataFeatures(numeric, categorical).fit(train)
    assert fitted.imputed["age"] == pytest.approx(train["age"].mean())
    assert fitted.imputed["age"] != pytest.approx(table["age"].mean())
    changed = table.copy()
    changed.loc[changed["split"] == "test", ["age", "size_mm"]] = 1000.0      # test rows change wildly
    refit = metadata.MetadataFeatures(numeric, categorical).fit(changed[changed["split"] == "train"])
    assert refit.imputed == fitted.imputed
    test = table[table["split"] == "test"]
    assert np.array_equal(refit.transform(test), fitted.transform(test))
    # and the logistic regression fits on train only: changing test rows leaves its predictions on val unchanged
    parts = {"train": train, "val": train.iloc[:20], "test": test}
    a = metadata.fit_predict(metadata.logistic_regression(numeric, categorical), parts, numeric, categorical)
    b = metadata.fit_predict(metadata.logistic_regression(numeric, categorical),
                             {**parts, "test": changed[changed["split"] == "test"]}, numeric, categorical)
    assert np.array_equal(a["val"], b["val"])


def test_drop_rows_without_sex(archive_table):
    kept = metadata.drop_rows_without_sex(archive_table)
    assert (archive_table["sex"] == "unknown").any()
    assert set(kept["sex"]) == {"male", "female"}
    assert len(kept) == (archive_table["sex"] != "unknown").sum()


@pytest.mark.parametrize("backbone", ["small_cnn", "resnet18"])
def test_fusion_output_shape_and_metadata_branch_gets_gradient(backbone):
    torch.manual_seed(0)
    model = create_fusion(backbone, n_features=5, image_size=32)
    images, features = torch.randn(4, 3, 32, 32), torch.randn(4, 5)
    out = model((images, features))
    assert out.shape == (4, 1)
    torch.nn.functional.binary_cross_entropy_with_logits(out, torch.ones(4, 1)).backward()
    grad = model.meta[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.encoder is not None and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    with pytest.raises(TypeError, match="features="):
        model(images)
    assert create_metadata_mlp(5)((images, features)).shape == (4, 1)
    assert create_image_model(backbone, image_size=32)(images).shape == (4, 1)


def test_fusion_trains_through_fit_with_feature_batches(tmp_path, archive_table):
    table = archive_table.iloc[:64].reset_index(drop=True)
    cache = build_cache(table, 16, jobs=1)
    feats = metadata.MetadataFeatures(*metadata.columns(table)).fit(table)
    x = feats.transform(table)
    batches = Batches(cache, table["image_id"], table["target"].to_numpy(np.float32), 16, shuffle=True, features=x)
    (images, meta), labels = next(iter(batches))
    assert images.shape == (16, 3, 16, 16) and meta.shape == (16, x.shape[1]) and labels.shape == (16,)
    with pytest.raises(ValueError, match="features must be"):
        Batches(cache, table["image_id"], table["target"], 16, features=x[:10])
    model = create_fusion("small_cnn", x.shape[1], image_size=16)
    pre = Preprocess((0.5,) * 3, (0.25,) * 3)
    result = fit(model, batches, batches, pre, pre, FitConfig(max_epochs=2, monitor="auc", device="cpu"),
                 checkpoint_dir=tmp_path / "ck")
    assert len(result.history) == 2 and "val_auc" in result.history
    p = predict(model, Batches(cache, table["image_id"], table["target"], 16, features=x), pre)
    assert p.shape == (64,) and ((p >= 0) & (p <= 1)).all()


def test_threshold_selection_uses_validation_only():
    rng = np.random.default_rng(0)
    y_val = rng.integers(0, 2, 200)
    p_val = np.clip(0.3 * y_val + rng.normal(0.35, 0.2, 200), 0, 1)
    parts = {"val": pd.DataFrame({"target": y_val, "lesion_id": np.arange(200) // 2}),
             "test": pd.DataFrame({"target": rng.integers(0, 2, 100), "lesion_id": np.arange(100) // 2})}
    ev = evaluation.evaluate_binary(parts, {"val": p_val, "test": rng.random(100)}, "mel", n_boot=20)
    other_test = {"val": p_val, "test": rng.random(100)}
    ev2 = evaluation.evaluate_binary({**parts, "test": parts["test"].assign(target=1 - parts["test"]["target"])},
                                     other_test, "mel", n_boot=20)
    assert ev.per_class["threshold"].equals(ev2.per_class["threshold"])      # test never moves a threshold
    t = metrics.choose_threshold(y_val, p_val, "sensitivity", 0.9)
    assert ((p_val >= t)[y_val == 1]).mean() >= 0.9
    assert ((p_val >= t + 1e-9)[y_val == 1]).mean() < 0.9 or t == p_val.max()
    j = metrics.choose_threshold(y_val, p_val, "youden")
    grid = np.unique(p_val)
    youden = [((p_val >= g)[y_val == 1]).mean() - ((p_val >= g)[y_val == 0]).mean() for g in grid]
    assert ((p_val >= j)[y_val == 1]).mean() - ((p_val >= j)[y_val == 0]).mean() == pytest.approx(max(youden))
    assert ev.metrics["test"]["youden_threshold"] == pytest.approx(j)
    assert ev.metrics["test"]["auc_low"] <= ev.metrics["test"]["auc"] <= ev.metrics["test"]["auc_high"]


def test_binary_record_writes_the_positive_column(archive_table):
    parts = {s: archive_table.iloc[i::3] for i, s in enumerate(("train", "val", "test"))}
    rng = np.random.default_rng(1)
    proba = {s: rng.random(len(parts[s])) for s in ("val", "test")}
    ev = evaluation.evaluate_binary(parts, proba, "malignant", negative="benign", n_boot=10)
    rec = registry.record("binary", "isic-test", {"task": "isic_archive"}, parts, ev)
    pred = pd.read_csv(rec.folder / "predictions.csv")
    assert list(pred.columns) == ["image_id", "split", "group", "label", "p_malignant"]
    assert (rec.folder / "tables" / "thresholds_test.csv").is_file()
    assert not (rec.folder / "isic_test_predictions.csv").exists()


def test_metadata_only_baseline_beats_chance_on_the_synthetic_archive(archive_table):
    split = binary.binary_split(archive_table, "isic_archive", (0.7, 0.15, 0.15), seed=0)
    parts = inputs.by_split(archive_table.merge(split, on="image_id"))
    numeric, categorical = metadata.columns(parts["train"])
    proba = metadata.fit_predict(metadata.logistic_regression(numeric, categorical), parts, numeric, categorical)
    auc = evaluation.evaluate_binary(parts, proba, "malignant", n_boot=200).metrics["test"]
    assert auc["auc_low"] > 0.5, auc                     # the 95% interval lies above chance
    assert auc["auc"] < 0.95                             # partial signal: metadata alone is far from perfect


def test_synthetic_archive_has_malignant_subtypes_and_a_metadata_signal(archive_table):
    subtypes = malignant_subtypes(archive_table)
    assert set(subtypes[subtypes != ""]) == {"basal cell carcinoma", "melanoma", "melanoma metastasis",
                                             "squamous cell carcinoma"}
    assert (subtypes[archive_table["target"] == 0] == "").all()
    older = archive_table["age"] >= archive_table["age"].median()
    larger = archive_table["size_mm"] >= archive_table["size_mm"].median()
    rate = archive_table["target"]
    assert rate[older].mean() > rate[~older].mean() + 0.1
    assert rate[larger].mean() > rate[~larger].mean() + 0.1


def test_class_folders_one_or_two_levels_down(tmp_path):
    for depth, root in ((1, tmp_path / "a"), (2, tmp_path / "b")):
        base = root / "skin-cancer-download" if depth == 1 else root / "archive" / "HAM10000 images"
        for k, cls in enumerate(("Melanoma", "nv")):
            write_jpeg(base / cls / f"img_{k}.jpg", seed=k)
        assert detect_layouts(root) == [("folders", base)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            catalog = load_catalog(root)
        assert sorted(catalog["dx"]) == ["mel", "nv"]
    with pytest.raises(FileNotFoundError, match="no dataset layout"):
        deep = tmp_path / "c" / "x" / "y" / "z" / "mel"
        write_jpeg(deep / "img.jpg")
        load_catalog(tmp_path / "c")


def test_task_and_choice_errors_name_the_fix(synthetic_small):
    with pytest.raises(ValueError, match="unknown task 'mela'.*melanoma"):
        binary.task_of("mela")
    with pytest.raises(ValueError, match="needs a 'malignant' column"):
        binary.with_target(load_catalog(synthetic_small, layout="ham10000"), "isic_archive")
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['cnn'\]"):
        binary.check_choices(["cnn"], ["natural"])
    assert binary.run_name(None, "isic_archive", "fusion", "balanced", "small_cnn") == "isic-fusion-small_cnn-balanced"
    assert binary.run_name("D-mobilenet", "isic_archive", "image", "natural", "mobilenetv2") == "D-mobilenet-image-natural"


def test_a_network_is_initialised_from_its_seed_alone():
    a = binary.make_model("fusion", 3, image_size=16, seed=1)
    torch.rand(100)                                    # whatever ran before (e.g. a previous run's training)
    b = binary.make_model("fusion", 3, image_size=16, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.meta[0].weight, binary.make_model("fusion", 3, image_size=16, seed=2).meta[0].weight)


def test_the_subtype_split_is_the_binary_split_restricted(archive_table):
    split = binary.binary_split(archive_table, "isic_archive", (0.7, 0.15, 0.15), seed=0)
    table = archive_table.merge(split, on="image_id")
    sub = subtype_table(table)
    assert sub.attrs["classes"] == ["bcc", "mel", "metastasis", "scc"]
    assert (sub["target"] == 1).all() and sub["image_id"].is_unique
    where = table.set_index("image_id")["split"]
    assert (sub["split"].to_numpy() == where.loc[sub["image_id"]].to_numpy()).all()    # no image moves split
    groups = pd.Series(groups_of(table), index=table["image_id"]).loc[sub["image_id"]]
    assert (pd.Series(sub["split"].to_numpy()).groupby(groups.to_numpy()).nunique() == 1).all()   # group-disjoint
    assert (sub["label"] == sub["subtype"].map({c: i for i, c in enumerate(sub.attrs["classes"])})).all()
    known = malignant_subtypes(table) != ""
    assert len(sub) == known.sum() and sub.attrs["left_out"] == {"another malignant diagnosis": 0,
                                                                 "a subtype without train images": 0}
    rows = binary.training_rows(inputs.by_split(sub), "undersampled", seed=0, target="label")
    assert rows["label"].value_counts().nunique() == 1 and set(rows["split"]) == {"train"}


def test_subtype_labels_come_from_the_most_specific_diagnosis():
    diagnoses = [("Melanoma Invasive", 1, "train"), ("Melanoma in situ", 1, "val"), ("Melanoma metastasis", 1, "train"),
                 ("Basal cell carcinoma", 1, "train"), ("Squamous cell carcinoma in situ", 1, "train"),
                 ("Squamous cell carcinoma, Invasive", 1, "test"), ("Merkel cell carcinoma", 1, "train"),
                 ("Nevus", 0, "train"), ("Melanoma Invasive", 0, "train")]
    table = pd.DataFrame(diagnoses, columns=["diagnosis", "target", "split"]).assign(image_id=lambda t: t.index.astype(str))
    assert malignant_subtypes(table).tolist() == [
        "melanoma", "melanoma", "melanoma metastasis", "basal cell carcinoma", "squamous cell carcinoma",
        "squamous cell carcinoma", "", "", ""]                   # another malignant diagnosis, benign rows: none
    sub = subtype_table(table)
    assert sub["subtype"].tolist() == ["mel", "mel", "metastasis", "bcc", "scc", "scc"]
    assert sub.attrs["left_out"]["another malignant diagnosis"] == 1
    # a subtype seen only outside train is no class: its val / test images are left out
    only_test = table.assign(split=np.where(table["diagnosis"].str.startswith("Squamous"), "test", table["split"]))
    sub = subtype_table(only_test)
    assert sub.attrs["classes"] == ["bcc", "mel", "metastasis"] and "scc" not in set(sub["subtype"])
    assert sub.attrs["left_out"]["a subtype without train images"] == 2
    with pytest.raises(SubtypesUnavailable, match="1 malignant subtype.*at least 2"):
        subtype_table(table[table["diagnosis"].str.startswith("Melanoma I")])


def test_a_smoke_run_keeps_a_few_images_of_every_subtype(archive_table):
    split = binary.binary_split(archive_table, "isic_archive", (0.7, 0.15, 0.15), seed=0)
    table = archive_table.merge(split, on="image_id")
    small = inputs.smoke_subset(table, 2, by=[binary.TARGET, malignant_subtypes(table)])
    sub = subtype_table(small)                        # the smoke run still reaches the subtype model
    assert sub.attrs["classes"] == ["bcc", "mel", "metastasis", "scc"]
    assert sub.groupby(["split", "subtype"]).size().max() <= 2 and (small["target"] == 0).sum() <= 6


def test_an_export_without_diagnosis_columns_says_the_subtypes_are_unknown(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    ids = [f"ISIC_{k:07d}" for k in range(6)]
    pd.DataFrame({"isic_id": ids, "diagnosis_1": ["Benign", "Malignant"] * 3, "age_approx": [40, 70] * 3,
                  "sex": ["male", "female"] * 3, "patient_id": [f"IP_{k}" for k in range(6)]}
                 ).to_csv(root / "metadata.csv", index=False)
    for k, image in enumerate(ids):
        write_jpeg(root / f"{image}.jpg", seed=k)
    table = binary.with_target(archive(root), "isic_archive").assign(split=["train", "train", "val", "val", "test", "test"])
    with pytest.raises(SubtypesUnavailable, match="no diagnosis column more specific than benign / malignant"):
        subtype_table(table)


def test_a_multiclass_image_model_trains_on_the_subtypes(tmp_path, archive_table):
    split = binary.binary_split(archive_table, "isic_archive", (0.7, 0.15, 0.15), seed=0)
    sub = subtype_table(archive_table.merge(split, on="image_id"))
    parts = inputs.by_split(sub)
    k = len(sub.attrs["classes"])
    model = binary.make_model("image", 0, "small_cnn", num_classes=k, image_size=16, seed=0)
    assert binary.model_factory("image", 0, "small_cnn", num_classes=k)[1]["num_classes"] == k
    assert "num_classes" not in binary.model_factory("image", 0, "small_cnn")[1]       # binary runs' kwargs unchanged
    assert binary.make_model("fusion", 3, num_classes=k, image_size=16)((torch.randn(2, 3, 16, 16), torch.randn(2, 3))).shape == (2, k)
    cache = build_cache(sub, 16, jobs=1)
    pre = Preprocess((0.5,) * 3, (0.25,) * 3)
    proba, result, _ = binary.fit_network(model, parts, parts["train"], cache, None, "balanced", (pre, pre),
                                       FitConfig(max_epochs=1, device="cpu"), batch_size=16, target="label")
    assert proba["test"].shape == (len(parts["test"]), k) and np.allclose(proba["test"].sum(1), 1, atol=1e-5)
    assert "val_balanced_accuracy" in result.history
    result = evaluation.evaluate_splits(parts, proba, n_boot=20, classes=sub.attrs["classes"])
    assert {"balanced_accuracy", "f1_macro"} <= set(result.ci.index)
    assert list(result.confusion.index) == sub.attrs["classes"]
    assert binary.run_name(None, "isic_archive", "subtypes", "natural", "small_cnn") == "isic-subtypes-small_cnn-natural"


def test_clip_image_branch_mlp_head_and_clip_preprocessing():
    from skinlib.models.factories import clip_arguments
    from skinlib import parameters
    from skinlib.run.plan import knob_rules
    from skinlib.models.image_branch import CLIPImageTower

    model = binary.make_model("image", 0, "clip-tiny", image_size=32, seed=0)
    assert isinstance(model.encoder, CLIPImageTower) and not hasattr(model.encoder, "transformer")   # no text tower
    assert isinstance(model.head[-1], torch.nn.Linear) and len(model.head) == 4       # MLP head (study B)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    mean, std = binary.normalization(model, "image", "clip-tiny", False, None, [])
    assert mean[0] == pytest.approx(0.48145466) and std[2] == pytest.approx(0.27577711)   # CLIP's, not the data's
    assert clip_arguments("clip-ViT-B-32") == {"name": "ViT-B-32", "tag": "openai", "config": None}
    assert clip_arguments("clip-ViT-B-32.laion2b_s34b_b79k")["tag"] == "laion2b_s34b_b79k"
    with pytest.raises(ValueError, match="no pretrained weights"):
        binary.make_model("image", 0, "clip-tiny", pretrained=True)
    assert parameters.problem("backbone", "clip-ViT-B-32", "07", knob_rules("07")) is None
    assert "clip-tiny" in parameters.problem("backbone", "clip-tny", "07", knob_rules("07"))


def test_study_d_small_cnn_flattens_into_a_dense_layer():
    """Study D's Fig. 3 CNN: conv / max-pool stages, flatten, dense; no global pooling, so it is built for one side."""
    from skinlib.models.custom_cnn import SmallCNN

    model = create_image_model("small_cnn", image_size=32)
    kinds = {type(m) for m in model.encoder.modules()}
    assert isinstance(model.encoder, SmallCNN) and torch.nn.MaxPool2d in kinds and torch.nn.Flatten in kinds
    assert not any("Adaptive" in k.__name__ for k in kinds) and model.encoder.dense[0].in_features == 128 * 4 * 4
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    with pytest.raises(ValueError, match="built for 32 px"):
        model(torch.randn(2, 3, 48, 48))
    with pytest.raises(ValueError, match="give image_size"):
        create_image_model("small_cnn")


def test_study_d_head_is_a_dense_relu_layer_on_the_pooled_features():
    factory, kwargs = binary.model_factory("image", 0, "resnet18", head="mlp")
    assert factory == "image_model" and kwargs["head"] == "mlp"
    assert "head" not in binary.model_factory("image", 0, "resnet18")[1]
    model = binary.make_model("image", 0, "resnet18", head="mlp", seed=0)
    assert [type(m).__name__ for m in model.head] == ["Linear", "ReLU", "Dropout", "Linear"]


def test_balanced_evaluation_undersamples_every_split_within_it(archive_table):
    split = binary.binary_split(archive_table, "isic_archive", (0.7, 0.15, 0.15), seed=0)
    parts = inputs.by_split(archive_table.merge(split, on="image_id"))
    assert binary.evaluation_parts(parts, "natural") == parts
    with pytest.raises(ValueError, match="evaluate_on = 'balanced'"):
        binary.evaluation_parts(parts, "natural", 10)
    smaller = {s: int(p["target"].value_counts().min()) for s, p in parts.items()}
    every = binary.evaluation_parts(parts, "balanced")
    for s, p in every.items():
        assert p["target"].value_counts().to_dict() == {0: smaller[s], 1: smaller[s]}
        assert set(p["image_id"]) <= set(parts[s]["image_id"])                # no image changes split
    subset = binary.evaluation_parts(parts, "balanced", 20, ratios=(0.7, 0.15, 0.15), seed=1)
    assert [p["target"].value_counts().to_dict() for p in subset.values()] == [{0: 14, 1: 14}, {0: 3, 1: 3}, {0: 3, 1: 3}]
    with pytest.raises(ValueError, match="the train split has .* fewer than"):
        binary.evaluation_parts(parts, "balanced", 100000)


def test_the_multiclass_task_with_benign_keeps_every_benign_image_as_the_first_class(archive_table):
    from skinlib.subtypes import variants

    split = binary.binary_split(archive_table, "isic_archive", (0.7, 0.15, 0.15), seed=0)
    table = archive_table.merge(split, on="image_id")
    ours, paper = subtype_table(table), subtype_table(table, with_benign=True)
    assert paper.attrs["classes"] == ["benign", *ours.attrs["classes"]]
    assert (paper["label"] == 0).sum() == (table["target"] == 0).sum() and len(paper) == len(ours) + (table["target"] == 0).sum()
    assert paper.loc[paper["label"] > 0, "subtype"].value_counts().equals(ours["subtype"].value_counts())
    assert variants("both") == (False, True) and variants("none") == ()
    with pytest.raises(ValueError, match="with_benign"):
        variants("yes")


def test_07s_study_d_parameters_are_checked_before_anything_runs():
    from skinlib import parameters
    from skinlib.models.factories import check

    assert parameters.problem("evaluate_on", "balanced", "07") is None and parameters.problem("monitor", "loss", "07") is None
    for name, value in (("evaluate_on", "natrual"), ("balanced_subset", 1), ("monitor", "accuracy"), ("subtypes", True)):
        assert parameters.problem(name, value, "07_binary_isic.ipynb") is not None
    assert check("head", "mlp", "07") == "mlp"
    with pytest.raises(parameters.KnobError, match="did you mean 'mlp'"):
        check("head", "mpl", "07")
