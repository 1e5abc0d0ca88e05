"""One typed settings object, loaded once at start, failing fast.

Every value comes from a constructor argument or else from its documented
environment variable (prefix ``B2C_``), e.g. ``B2C_DATABASE_URL``. Components take
the settings they need as arguments; nothing deep inside reads the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from b2c_monitoring.errors import ConfigError

DEVELOPMENT_PROCESSOR_TOKEN = "dev-processor-token"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="B2C_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"

    database_url: str = "postgresql://b2c@127.0.0.1:5433/b2c"
    database_pool_size: int = Field(default=8, ge=1, le=64)

    elasticsearch_url: str = "http://127.0.0.1:9200"
    logs_index: str = "b2c-logs"

    default_tenant: str = Field(default="default", min_length=1, max_length=64)

    # the processor: an OTLP gRPC server that the collector exports to
    processor_listen: str = "127.0.0.1:4417"
    processor_metrics_port: int = 9464
    processor_token: str = DEVELOPMENT_PROCESSOR_TOKEN
    # gRPC threads of the front; derivation runs in processor_processes worker processes
    processor_workers: int = Field(default=8, ge=1, le=64)
    processor_processes: int = Field(default=2, ge=1, le=64)
    processor_max_message_bytes: int = 64 * 1024 * 1024

    # the admin API
    api_url: str = "http://127.0.0.1:8000"

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.environment == "production" and self.processor_token == DEVELOPMENT_PROCESSOR_TOKEN:
            raise ValueError("B2C_PROCESSOR_TOKEN must be set to a secret in production")
        return self


def load_settings(**overrides: object) -> Settings:
    """Settings from arguments, then the environment; a bad value is a ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
