"""Settings: one object, read from ``UPRES_*`` environment variables.

Built once in each entry point (``create_app``, the CLI, the worker) and passed
down; nothing in upres reads the environment anywhere else.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from upres.domain.media import DEFAULT_CHUNK_SECONDS, EncodeSettings, MediaLimits, VideoCodec
from upres.domain.pricing import Pricing
from upres.errors import ConfigError, InvalidRequest

# How pydantic-settings names the field it could not decode: 'for field "name"'.
_UNDECODED_FIELD = re.compile(r'field "(\w+)"')
_GPUS_FORMAT = "list GPU indices (0 or more) separated by commas, like 0,1"
_PRICES_FORMAT = (
    'give a JSON object of network id to price multiplier, like {"realesrgan-x4plus": 1.5}'
)


class Settings(BaseSettings):
    """Every knob of upres. Each field is ``UPRES_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="UPRES_", extra="ignore", frozen=True)

    # where things live
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/upres.db"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = Field(
        default=None, description="Base of result links; default http://<host>:<port>"
    )

    # engine
    device: Literal["auto", "cpu", "cuda", "vulkan"] = Field(
        default="auto",
        description="auto: CUDA, else a Vulkan GPU, else the CPU; or cpu, cuda, vulkan",
    )
    vulkan_device: int | None = Field(
        default=None,
        ge=0,
        description="Vulkan device index (vulkaninfo --summary order); default the first GPU",
    )
    model: str | None = Field(
        default=None,
        description="Model id for every factor; default: the registry's best model per factor",
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads per model run; default all cores (fewer when sharing the CPU)",
    )
    temporal: bool = Field(
        default=True,
        description="Motion-compensated temporal stabilisation of the model's output (no flicker)",
    )
    temporal_flow: Literal["auto", "dis", "spynet"] = Field(
        default="auto",
        description="Motion estimator: auto (DIS on CPU, SpyNet on CUDA), dis, spynet",
    )
    encode_codec: VideoCodec | None = Field(
        default=None,
        description="Output codec: h264, h265, av1; default h264, or h265 10-bit for an HDR "
        "or deeper than 8-bit source",
    )
    encode_crf: int | None = Field(
        default=None,
        description="Output quality (lower is better); default h264 18, h265 20, av1 28",
    )
    encode_preset: str | None = Field(
        default=None,
        description="Encoder speed: x264/x265 ultrafast..placebo, av1 0-13; "
        "default medium, fast, 8",
    )
    encode_threads: int = Field(default=0, ge=0, description="Encoder threads; 0: its own choice")
    deinterlace_double_rate: bool = Field(
        default=False,
        description="Deinterlace to one frame per field (50i -> 50p) instead of one per frame",
    )
    max_width: int = 7680
    max_height: int = 4320
    max_duration_s: float = 3600.0
    max_input_bytes: int = 2 * 1024**3

    # network policy, fetch and callbacks
    allow_private_networks: bool = False
    callback_ca_file: Path | None = None
    fetch_timeout_s: float = 600.0
    probe_timeout_s: float = 30.0
    callback_timeout_s: float = 10.0
    callback_retry_delays_s: tuple[float, ...] = (1.0, 2.0, 4.0)

    # worker and queue
    worker_concurrency: int = 1
    gpus: Annotated[tuple[int, ...] | None, NoDecode] = Field(
        default=None,
        description="CUDA devices for worker processes, comma-separated (0,1); "
        "default every GPU torch sees",
    )
    lease_s: float = Field(
        default=30.0, gt=0, description="Lease of a running task or chunk, renewed by heartbeats"
    )
    chunk_seconds: float = Field(
        default=DEFAULT_CHUNK_SECONDS,
        gt=0,
        description="Seconds of source per chunk of a long task (chunks run on any worker "
        "at once); a shorter video runs in one pass",
    )
    heartbeat_s: float = 3.0
    max_attempts: int = 3
    reaper_interval_s: float = 5.0
    ray_address: str | None = Field(
        default=None, description="Run workers as Ray actors on this cluster (auto, ray://...)"
    )
    ray_gpus_per_worker: float | None = Field(
        default=None, ge=0, description="GPUs per Ray actor; default 1 if the cluster has GPUs"
    )

    # results
    result_ttl_s: int = 24 * 3600
    janitor_interval_s: float = 300.0
    storage_backend: Literal["local", "s3"] = Field(
        default="local", description="local: files under <data_dir>/results; s3: a bucket"
    )
    s3_bucket: str | None = Field(default=None, description="Bucket for storage_backend=s3")
    s3_prefix: str = Field(default="", description="Prefix of result object names in the bucket")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2...); default AWS"
    )
    s3_region: str | None = None

    # accounts and billing
    price_per_second_1x: float = 16.0
    price_per_second_2x: float = 16.0
    price_per_second_4x: float = 28.0
    network_prices: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description='Price multiplier per network id, as JSON ({"realesrgan-x4plus": 1.5}); '
        "a network not named costs 1.0 times the factor's price",
    )
    interpolation_price_per_second: float = Field(
        default=4.0,
        ge=0,
        description="Credits per started second of output for a task that chooses a frame "
        "rate or slow motion (model_params.frame_rate, .slowmo), on top of its upscale price",
    )
    initial_credits: float = 10_000.0
    rate_limit_per_minute: int = Field(default=120, ge=1, description="Requests per key per minute")
    auth_failures_per_minute: int = Field(
        default=20,
        ge=1,
        description="Failed authentications per client address per minute; "
        "past it every request from the address gets 429 until the window passes",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for rate limits shared by every API process (redis://...)"
    )
    metrics_token: str | None = Field(
        default=None, description="Bearer token /metrics requires; unset: loopback clients only"
    )

    # API
    api_workers: int = Field(
        default=1, ge=1, description="API server processes (uvicorn workers) of upres serve"
    )
    access_log: bool = Field(default=True, description="Log a line per HTTP request")
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="How long an authenticated key is remembered; "
        "a revocation takes effect within it; 0 looks every request up",
    )
    submit_threads: int = Field(
        default=32,
        ge=1,
        description="Threads that probe submissions and uploads (never the request threads)",
    )
    submit_max_pending: int = Field(
        default=256, ge=1, description="Submissions and uploads in flight, in all; more get 503"
    )
    submit_max_per_key: int = Field(
        default=8, ge=1, description="Submissions and uploads in flight per key; more get 429"
    )
    max_request_bytes: int = Field(
        default=1024**2, ge=0, description="Largest request body the API reads; larger gets 413"
    )

    @field_validator("gpus", mode="before")
    @classmethod
    def _split_gpus(cls, value: object) -> object:
        """``UPRES_GPUS=0,2`` -> (0, 2); blank means not set. Raises ValueError
        when a part is not an integer."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        try:
            return tuple(int(part) for part in value.split(","))
        except ValueError:
            raise ValueError(_GPUS_FORMAT) from None

    @field_validator("gpus")
    @classmethod
    def _check_gpus(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 0):
            raise ValueError(_GPUS_FORMAT)
        return value

    @field_validator("network_prices", mode="before")
    @classmethod
    def _parse_network_prices(cls, value: object) -> object:
        """``UPRES_NETWORK_PRICES`` is a JSON object; blank means none. Raises
        ValueError when it is not JSON."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(_PRICES_FORMAT) from None

    @field_validator("network_prices")
    @classmethod
    def _check_network_prices(cls, value: dict[str, float]) -> dict[str, float]:
        for network, multiplier in value.items():
            if not (math.isfinite(multiplier) and multiplier > 0):
                raise ValueError(f"the multiplier of {network} must be a positive number")
        return value

    @model_validator(mode="after")
    def _check_encode(self) -> Settings:
        try:
            _ = self.encode_settings
        except InvalidRequest as exc:
            raise ValueError(f"UPRES_ENCODE_{(exc.param or '').upper()}: {exc}") from exc
        return self

    @property
    def encode_settings(self) -> EncodeSettings:
        """How task outputs are written. Raises InvalidRequest for a bad preset or crf."""
        return EncodeSettings(
            codec=self.encode_codec,
            crf=self.encode_crf,
            preset=self.encode_preset,
            threads=self.encode_threads,
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'upres.db'}"

    @property
    def resolved_public_base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def pricing(self) -> Pricing:
        return Pricing(
            per_second_1x=self.price_per_second_1x,
            per_second_2x=self.price_per_second_2x,
            per_second_4x=self.price_per_second_4x,
            network_multipliers=dict(self.network_prices),
            interpolation_per_second=self.interpolation_price_per_second,
        )

    @property
    def media_limits(self) -> MediaLimits:
        return MediaLimits(
            max_width=self.max_width,
            max_height=self.max_height,
            max_duration_s=self.max_duration_s,
        )


def load_settings(**overrides: object) -> Settings:
    """Settings from the ``UPRES_*`` environment with ``overrides`` (None: not given) on top.

    Raises ConfigError naming each setting whose value does not validate.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    except SettingsError as exc:
        raise ConfigError(_describe_undecoded(exc)) from exc


def _describe_undecoded(exc: SettingsError) -> str:
    """pydantic-settings' error for a list setting whose value is not JSON: it names
    the field only inside its message."""
    found = _UNDECODED_FIELD.search(str(exc))
    name = f"UPRES_{found.group(1).upper()}" if found else "a list setting"
    why = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
    return f"invalid settings: {name}: give a JSON list, like [1, 2, 4]{why}"


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        names = [str(part) for part in error["loc"]]
        problems.append(f"UPRES_{names[0].upper()}: {message}" if names else message)
    return "invalid settings: " + "; ".join(problems)
