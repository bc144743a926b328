import json
import warnings

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from kddad.data import fields
from kddad.errors import DataError
from kddad.features.encoder import FeatureEncoder

ALL_NUMERIC = list(fields.NUMERIC)


@pytest.fixture(scope="module")
def parts(kdd):
    """Normal rows of two protocols as 'train', the rest as 'unseen' (real rows, cut at test time)."""
    normal = kdd[kdd["label"] == "normal"]
    train = normal[normal["protocol_type"] == "tcp"].sample(5000, random_state=0)
    unseen = kdd[kdd["protocol_type"] != "tcp"].sample(2000, random_state=0)
    return train, unseen


def test_fitted_on_train_transforms_unseen_categories_as_zeros(parts, caplog):
    train, unseen = parts
    enc = FeatureEncoder(ALL_NUMERIC, list(fields.CATEGORICAL), "standard").fit(train)
    assert enc.categories["protocol_type"] == ["tcp"]
    caplog.set_level("INFO")
    X = enc.transform(unseen, what="unseen")
    assert X.dtype == np.float32 and X.shape == (2000, len(enc.feature_names))
    proto = enc.feature_names.index("protocol_type_tcp")
    assert (X[:, proto] == 0).all()
    assert "categories unseen in training" in caplog.text and "'udp'" in caplog.text
    assert set(enc.unknown_categories(unseen)["protocol_type"]) <= {"udp", "icmp"}


@pytest.mark.parametrize("method", ["standard", "minmax", "robust"])
def test_scaling_statistics_come_from_train_only(parts, method):
    train, unseen = parts
    enc = FeatureEncoder(list(fields.ALIBI18), scaling=method).fit(train)
    Xt = enc.transform(train)
    if method == "standard":
        nonconst = train[list(fields.ALIBI18)].std(ddof=0).to_numpy() > 0
        assert np.allclose(Xt[:, nonconst].mean(0), 0, atol=1e-4)
        assert np.allclose(Xt[:, nonconst].std(0), 1, atol=1e-3)
    elif method == "minmax":
        assert Xt.min() == pytest.approx(0) and Xt.max() == pytest.approx(1)
        assert enc.transform(unseen).max() > 1  # unseen rows are not rescaled to fit
    else:
        med = np.median(Xt, axis=0)
        assert np.allclose(med, 0, atol=1e-6)


def test_log1p_applies_only_to_heavy_tailed_columns(parts):
    train, _ = parts
    cols = ["src_bytes", "serror_rate"]
    enc = FeatureEncoder(cols, scaling="none", log1p=True).fit(train)
    X = enc.transform(train)
    names = enc.feature_names
    assert np.allclose(X[:, names.index("src_bytes")], np.log1p(train["src_bytes"].to_numpy()), rtol=1e-6)
    assert np.allclose(X[:, names.index("serror_rate")], train["serror_rate"].to_numpy())


def test_save_load_roundtrip_gives_identical_arrays(parts, tmp_path):
    train, unseen = parts
    enc = FeatureEncoder(ALL_NUMERIC, list(fields.CATEGORICAL), "robust", log1p=True).fit(train)
    enc.save(tmp_path / "enc")
    back = FeatureEncoder.load(tmp_path / "enc")
    assert back.feature_names == enc.feature_names
    assert np.array_equal(back.transform(unseen), enc.transform(unseen))
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["encoder.json"]


@pytest.mark.parametrize(
    "method, sk", [("standard", StandardScaler), ("minmax", MinMaxScaler), ("robust", RobustScaler)]
)
def test_transform_matches_scikit_learn(parts, method, sk):
    train, unseen = parts
    enc = FeatureEncoder(ALL_NUMERIC, list(fields.CATEGORICAL), method).fit(train)
    want_num = sk().fit(train[ALL_NUMERIC].to_numpy(float)).transform(unseen[ALL_NUMERIC].to_numpy(float))
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train[list(fields.CATEGORICAL)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_cat = onehot.transform(unseen[list(fields.CATEGORICAL)])
    got = enc.transform(unseen)
    assert np.allclose(got[:, : len(ALL_NUMERIC)], want_num, rtol=1e-5, atol=1e-5)
    assert np.array_equal(got[:, len(ALL_NUMERIC) :], want_cat)


@pytest.mark.parametrize(
    "tamper, match",
    [
        (lambda m: m.update(multiplier=m["multiplier"][:-1]), "one per numeric column"),
        (lambda m: m.pop("offset"), "KeyError"),
        (lambda m: m.update(format=99), "format 99"),
        (lambda m: m["categories"].update(service=["http"]), "disagree"),
    ],
)
def test_a_tampered_encoder_file_is_refused_naming_it(parts, tmp_path, tamper, match):
    train, _ = parts
    FeatureEncoder(ALL_NUMERIC, list(fields.CATEGORICAL)).fit(train).save(tmp_path / "enc")
    file = tmp_path / "enc" / "encoder.json"
    meta = json.loads(file.read_text())
    tamper(meta)
    file.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"encoder.json: not a valid kddad encoder.*{match}"):
        FeatureEncoder.load(tmp_path / "enc")


def test_missing_column_is_named(parts):
    train, _ = parts
    enc = FeatureEncoder(["src_bytes", "service"][:1], ["service"]).fit(train)
    with pytest.raises(DataError, match=r"new rows: missing column\(s\) \['service'\]"):
        enc.transform(train.drop(columns="service"), what="new rows")


def test_negative_count_under_log1p_is_reported(parts):
    train, _ = parts
    enc = FeatureEncoder(["src_bytes"], scaling="standard", log1p=True).fit(train)
    bad = train.head(10).copy()
    bad.iloc[4, bad.columns.get_loc("src_bytes")] = -5
    with pytest.raises(DataError, match=r"row 4, feature 'src_bytes'"):
        enc.transform(bad)


def test_groups_name_the_raw_feature_behind_each_encoded_column(parts):
    train, _ = parts
    enc = FeatureEncoder(["src_bytes", "count"], ["protocol_type", "flag"]).fit(train)
    groups = enc.groups
    assert [g.feature for g in groups] == ["src_bytes", "count", "protocol_type", "flag"]
    assert [g.categorical for g in groups] == [False, False, True, True]
    # contiguous, in order, covering every encoded column once
    assert groups[0].columns.start == 0 and groups[-1].columns.stop == len(enc.feature_names)
    assert all(a.columns.stop == b.columns.start for a, b in zip(groups, groups[1:]))
    for g in groups:
        names = enc.feature_names[g.columns]
        want = [f"{g.feature}_{c}" for c in enc.categories[g.feature]] if g.categorical else [g.feature]
        assert names == want
    assert enc.summary() == {
        "numeric": ["src_bytes", "count"],
        "categorical": ["protocol_type", "flag"],
        "scaling": "standard",
        "log1p": False,
        "encoded": len(enc.feature_names),
    }
