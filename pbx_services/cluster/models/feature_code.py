"""A tenant's own feature codes: the code it dials for a feature, where it is not the default."""

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.models.base import Base

FEATURE_NAME_MAX_LENGTH = 32
FEATURE_CODE_MAX_LENGTH = 16


class FeatureCode(Base):
    """Tenant `tenant_id` dials `code` for `feature` (a `cluster.feature_codes.Feature` value)
    instead of the feature's default code; a feature without a row keeps its default."""

    __tablename__ = "feature_codes"
    __table_args__ = (UniqueConstraint("tenant_id", "feature"), UniqueConstraint("tenant_id", "code"))

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    feature: Mapped[str] = mapped_column(String(FEATURE_NAME_MAX_LENGTH))
    code: Mapped[str] = mapped_column(String(FEATURE_CODE_MAX_LENGTH))

    def __repr__(self) -> str:
        return f"FeatureCode(tenant_id={self.tenant_id!r}, feature={self.feature!r}, code={self.code!r})"
