"""The look a task chooses, through the real HTTP server: model_params.network and
.denoise checked against the registry, priced, stored and shown; a client that
sends neither gets the operator's default exactly as before."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.api_harness import Api, FixedProber, fake_dns, running_api
from upres.api.deps import Services
from upres.domain.pricing import Pricing
from upres.domain.tasks import API_MODEL, Factor
from upres.errors import ConfigError, InvalidRequest
from upres.inputs.netpolicy import AddressPolicy
from upres.inputs.urlpolicy import UrlPolicy
from upres.models import registry
from upres.services.looks import Look, check_network_settings, choose_look
from upres.services.tasks import Submission, TaskService

VIDEO = "https://videos.example.com/clip.mp4"
GENERATE = "/v1/videos/generations"
ESTIMATE = "/v1/videos/generations/estimate"
CHOSEN = "realesr-animevideov3"
DEFAULT = registry.default_model_for(Factor.X2).id
PRICES = {CHOSEN: 1.5}
# FixedProber's video: 8.2 s, billed as 9 started seconds; 16 credits a second at 2x.
SECONDS, PER_SECOND_2X = 9, 16.0


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


def priced(services: Services) -> Services:
    """The harness's services with ``PRICES`` on the networks."""
    tasks = TaskService(
        store=services.store,
        prober=FixedProber(),
        pricing=Pricing(network_multipliers=PRICES),
        urls=UrlPolicy(AddressPolicy(resolver=fake_dns)),
        callback_body=services.renderer,
        uploads=services.uploads,
    )
    return dataclasses.replace(services, tasks=tasks)


@pytest.fixture
def priced_api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path, adjust=priced, network_prices=PRICES) as running:
        yield running


def body(**params: object) -> dict[str, Any]:
    return {"model": API_MODEL, "video_urls": [VIDEO], "model_params": params}


def balance(api: Api) -> float:
    return api.store.get_account(api.owner.key.account_id).balance


def test_a_request_without_network_or_denoise_is_served_as_before(api: Api) -> None:
    with api.client() as client:
        bare = client.post(GENERATE, json={"model": API_MODEL, "video_urls": [VIDEO]})
        factor_only = client.post(GENERATE, json=body(upscale_factor="4"))
        read = client.get(f"/v1/tasks/{bare.json()['id']}")

    assert bare.status_code == factor_only.status_code == 200
    # The registry's default for the factor, now shown; nothing else changed.
    assert bare.json()["task_info"]["network"] == DEFAULT
    assert "denoise" not in bare.json()["task_info"]
    assert read.json() == bare.json()
    assert bare.json()["usage"]["credits_reserved"] == SECONDS * PER_SECOND_2X
    assert factor_only.json()["usage"]["credits_reserved"] == SECONDS * 28.0
    assert api.store.get_task(bare.json()["id"]).network == DEFAULT


def test_the_operators_default_network_is_what_a_request_without_one_gets(api: Api) -> None:
    tasks = TaskService(
        store=api.store,
        prober=FixedProber(),
        pricing=Pricing(),
        urls=UrlPolicy(AddressPolicy(resolver=fake_dns)),
        callback_body=api.services.renderer,
        default_model=CHOSEN,
    )
    plain = Submission(model=API_MODEL, video_urls=[VIDEO], factor=Factor.X4, callback_url=None)
    task = tasks.submit(key=api.owner.key, submission=plain)
    assert (task.network, task.denoise) == (CHOSEN, None)


def test_a_chosen_network_is_stored_and_shown_on_every_read(api: Api) -> None:
    with api.client() as client:
        created = client.post(GENERATE, json=body(network=CHOSEN)).json()
        read = client.get(f"/v1/tasks/{created['id']}").json()
        (listed,) = client.get("/v1/tasks").json()["data"]

    assert created["task_info"]["network"] == read["task_info"]["network"] == CHOSEN
    assert listed["task_info"]["network"] == CHOSEN
    assert api.store.get_task(created["id"]).network == CHOSEN


@pytest.mark.parametrize("path", [GENERATE, ESTIMATE])
def test_an_unknown_network_is_refused_naming_the_networks(api: Api, path: str) -> None:
    with api.client() as client:
        response = client.post(path, json=body(network="waifu9000"))
        listed = client.get("/v1/tasks").json()["data"]

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "invalid_parameter",
        "invalid_request_error",
        "model_params.network",
    )
    assert "'waifu9000'" in error["message"]
    assert all(spec.id in error["message"] for spec in registry.MODELS)
    assert listed == []
    assert balance(api) == 10_000.0


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"network": "realesrgan-x4plus", "denoise": 1}, "denoise", "level 1; its levels: 0"),
        ({"denoise": 2}, "denoise", f"{DEFAULT} has no denoise level 2"),
        ({"network": CHOSEN, "denoise": "2"}, "denoise", "valid integer"),
        ({"network": CHOSEN, "denoise": True}, "denoise", "valid integer"),
        ({"network": 4}, "network", "valid string"),
    ],
    ids=["no-levels", "default-network-no-levels", "string-level", "bool-level", "number-id"],
)
def test_a_level_or_a_value_the_network_does_not_take_is_refused(
    api: Api, params: dict[str, object], param: str, message: str
) -> None:
    with api.client() as client:
        response = client.post(GENERATE, json=body(**params))

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_parameter", f"model_params.{param}")
    assert message in error["message"]
    assert balance(api) == 10_000.0


def test_a_network_with_levels_takes_one_of_them(api: Api) -> None:
    leveled = "realcugan-pro-x2"
    with api.client() as client:
        refused = client.post(GENERATE, json=body(network=leveled, denoise=1))
        taken = client.post(GENERATE, json=body(network=leveled, denoise=3))
        networks = client.get("/v1/models").json()["data"][0]["networks"]

    assert refused.status_code == 400
    assert refused.json()["error"]["message"].endswith("its levels: 0, 3")
    assert taken.status_code == 200
    info = taken.json()["task_info"]
    assert (info["network"], info["denoise"]) == (leveled, 3)
    assert api.store.get_task(taken.json()["id"]).denoise == 3
    levels = {network["id"]: network["denoise_levels"] for network in networks}
    assert (levels[leveled], levels["realesrgan-x4plus"]) == ([0, 3], [0])


def test_a_network_costs_its_multiplier_in_the_estimate_and_the_reservation(
    priced_api: Api,
) -> None:
    with priced_api.client() as client:
        estimate = client.post(ESTIMATE, json=body(network=CHOSEN))
        task = client.post(GENERATE, json=body(network=CHOSEN)).json()
        default = client.post(GENERATE, json=body()).json()
        networks = client.get("/v1/models").json()["data"][0]["networks"]

    price = SECONDS * PER_SECOND_2X * 1.5
    assert estimate.status_code == 200, estimate.text
    assert (estimate.json()["network"], estimate.json()["credits"]) == (CHOSEN, price)
    assert "denoise" not in estimate.json()
    assert task["usage"]["credits_reserved"] == price
    assert default["usage"]["credits_reserved"] == SECONDS * PER_SECOND_2X  # not priced
    assert balance(priced_api) == 10_000.0 - price - SECONDS * PER_SECOND_2X
    cards = {network["id"]: network for network in networks}
    assert cards[CHOSEN]["price_multiplier"] == 1.5
    assert cards[CHOSEN]["credits_per_second"] == {"1": 24.0, "2": 24.0, "4": 42.0}
    assert cards["realesrgan-x4plus"]["price_multiplier"] == 1.0


def test_the_look_is_part_of_an_idempotent_request(api: Api) -> None:
    headers = {"Idempotency-Key": "order-7"}
    with api.client() as client:
        first = client.post(GENERATE, json=body(network=CHOSEN), headers=headers)
        replay = client.post(GENERATE, json=body(network=CHOSEN), headers=headers)
        other = client.post(GENERATE, json=body(network="realsr-df2k-x4"), headers=headers)

    assert replay.json()["id"] == first.json()["id"]
    assert other.status_code == 409


def test_a_request_without_a_look_hashes_as_before_looks_existed() -> None:
    # Idempotency records stored before the upgrade must still match their replays.
    submission = Submission(
        model=API_MODEL, video_urls=[VIDEO], factor=Factor.X4, callback_url=None
    )
    before = {"model": API_MODEL, "video_urls": [VIDEO], "factor": 4, "callback_url": None}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert submission.fingerprint() == expected
    chosen = dataclasses.replace(submission, network=CHOSEN)
    assert chosen.fingerprint() != expected


def test_a_network_smaller_than_the_factor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    small = dataclasses.replace(registry.get_model(CHOSEN), id="test-x2", scale=2)
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS, small))

    assert choose_look(
        network="test-x2", denoise=None, factor=Factor.X2, default_model=None
    ) == Look(network="test-x2", denoise=None)
    with pytest.raises(
        InvalidRequest, match='at most 2x: choose upscale_factor "1" or "2"'
    ) as refused:
        choose_look(network="test-x2", denoise=None, factor=Factor.X4, default_model=None)
    assert refused.value.param == "model_params.network"


def test_settings_that_name_no_network_are_refused_at_start() -> None:
    check_network_settings(model=None, priced=PRICES)
    with pytest.raises(ConfigError, match="UPRES_NETWORK_PRICES: unknown model 'typo'"):
        check_network_settings(model=None, priced={"typo": 2.0})
    with pytest.raises(ConfigError, match="UPRES_MODEL"):
        check_network_settings(model="typo", priced={})


def test_the_openapi_documents_the_two_params(api: Api) -> None:
    schema = httpx.get(f"{api.base_url}/openapi.json").json()
    params = schema["components"]["schemas"]["ModelParams"]["properties"]
    # null is taken as omitted, as for every optional field
    assert params["network"]["type"] == ["string", "null"]
    assert params["network"]["enum"] == [*(spec.id for spec in registry.MODELS), None]
    assert (params["denoise"]["type"], params["denoise"]["minimum"]) == (["integer", "null"], 0)
    assert params["denoise"]["maximum"] == 3
    info = schema["components"]["schemas"]["VideoTaskInfo"]["properties"]
    assert info["network"]["description"].startswith("upres extension")
