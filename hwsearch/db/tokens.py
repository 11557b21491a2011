"""API tokens, stored by the SHA-256 digest of their secret (never the secret)."""

from __future__ import annotations

from sqlalchemy import select

from hwsearch.db.checks import MAX_LABEL, check_text
from hwsearch.db.convert import token_record
from hwsearch.db.models import ApiToken
from hwsearch.db.repository import Repository
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import NotFoundError, StorageError
from hwsearch.records import TokenRecord, TokenScope

__all__ = ["TokenRepository"]


class TokenRepository(Repository):
    """The api_tokens table."""

    def add_token(self, *, name: str, token_hash: str, scope: TokenScope) -> TokenRecord:
        """Store an API token by the SHA-256 hex digest of its secret (never the secret)."""
        check_text("name", name, MAX_LABEL)
        if not isinstance(token_hash, str) or len(token_hash) != 64:
            raise StorageError("token_hash", "must be a SHA-256 hex digest (64 characters)")
        try:
            checked = TokenScope(scope)
        except ValueError:
            valid = ", ".join(s.value for s in TokenScope)
            raise StorageError("scope", f"unknown value {scope!r}; valid values: {valid}") from None
        with self._writing() as session:
            token = ApiToken(name=name, token_hash=token_hash, scope=checked)
            session.add(token)
            session.flush()
            return token_record(token)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this digest, revoked or not; ``None`` when there is none."""
        with self._reading() as session:
            token = session.scalars(
                select(ApiToken).where(ApiToken.token_hash == token_hash)
            ).one_or_none()
            return None if token is None else token_record(token)

    def list_tokens(self) -> list[TokenRecord]:
        with self._reading() as session:
            tokens = session.scalars(select(ApiToken).order_by(ApiToken.id))
            return [token_record(t) for t in tokens]

    def revoke_token(self, token_id: int) -> TokenRecord:
        with self._writing() as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                raise NotFoundError(f"token {token_id} not found")
            token.revoked = True
            session.flush()
            return token_record(token)


_install_retries(TokenRepository)
