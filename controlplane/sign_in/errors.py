"""Why a sign-in is refused; each is a stable problem ``type``."""

from __future__ import annotations

from controlplane.kit.errors import StratusError


class SignInRefused(StratusError):
    """Base of every sign-in refusal (each is audited as ``auth.login`` with outcome
    ``refused``)."""

    status = 401
    slug = "sign-in-refused"
    title = "Sign-in refused"


class OidcInvalidState(SignInRefused):
    status = 400
    slug = "oidc-invalid-state"
    title = "Unknown, expired or already used sign-in state"


class OidcIdpError(SignInRefused):
    slug = "oidc-idp-error"
    title = "The identity provider refused the sign-in"


class OidcCodeExchangeFailed(SignInRefused):
    slug = "oidc-code-exchange-failed"
    title = "The identity provider refused the authorization code"


class OidcInvalidIdToken(SignInRefused):
    """``field`` names the failed check (``nonce``, ``aud``, ``iss``, ``exp``, ``alg``, ...)."""

    slug = "oidc-invalid-id-token"
    title = "The ID token failed verification"


class NotInvited(SignInRefused):
    status = 403
    slug = "not-invited"
    title = "No invited user has this email"


class InvitationExpired(SignInRefused):
    """The user's first sign-in came after the invitation expired (an admin resends it)."""

    status = 403
    slug = "invitation-expired"
    title = "The invitation has expired"


class UserDeactivated(SignInRefused):
    """The account's SCIM client deprovisioned the user (``active`` false)."""

    status = 403
    slug = "user-deactivated"
    title = "The user is deactivated"


class IdpNotAllowed(SignInRefused):
    status = 403
    slug = "idp-not-allowed"
    title = "The account requires its own identity provider"


class AccountAmbiguous(SignInRefused):
    status = 409
    slug = "account-ambiguous"
    title = "The email is invited to several accounts"


class IdpUnavailable(SignInRefused):
    status = 502
    slug = "idp-unavailable"
    title = "The identity provider is unavailable"


class InvalidHandoff(SignInRefused):
    status = 400
    slug = "invalid-handoff"
    title = "Unknown, expired or already used hand-off code"


class InvalidSignInLink(SignInRefused):
    status = 400
    slug = "invalid-sign-in-link"
    title = "Unknown, expired or already used sign-in link"


class SignInLinkNotForUser(StratusError):
    status = 400
    slug = "sign-in-link-needs-user"
    title = "A console sign-in link signs in a user"
