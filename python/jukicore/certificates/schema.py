"""The register's table of certificates issued (one row per certificate), and its
Arrow form."""

from __future__ import annotations

import pyarrow as pa

from jukicore.store.schema import Column, Ddl, Index, Table

__all__ = ["ISSUANCE_SCHEMA", "ISSUANCE_TABLE", "PROVISION_SCHEMA", "WIDE_PROVISION_TABLE",
           "WIDE_REQUEST_TABLE", "migration_statements", "wide_area_statements"]

#: Every certificate issued: who issued it, for whom (members' codes, comma-separated),
#: which items, the requester's identity and right, the fee, when, with which key, and
#: the digests of its signed payload and of its PDF.
ISSUANCE_TABLE = Table("certificate_issuance", (
    Column("issuance_id", "text", False),
    Column("issued_at", "ts", False),
    Column("actor", "text", False),
    Column("kind", "text", False),          # residence (住民票の写し) / removed (除票の写し)
    Column("scope", "text", False),         # person / household / members
    Column("subject_code", "int", False),   # the person asked about (the first member)
    Column("member_codes", "text", False),  # 11-digit codes, comma-separated, printed order
    Column("items", "text", False),         # optional items shown, comma-separated
    Column("identity_kind", "text", False),  # card / photo_id
    Column("identity_ref", "text", False),  # card:<id> / <photo id kind>:<number>
    Column("requester_name", "text"),
    Column("requester_code", "int"),
    Column("right_kind", "text", False),    # self / household / proxy:self / proxy:household
    Column("principal_code", "int", False),
    Column("letter", "text"),               # a proxy's letter of attorney (reference)
    Column("fee", "int", False),            # yen
    Column("node_id", "text", False),
    Column("key_id", "text", False),
    Column("payload_digest", "text", False),  # SHA-256 of the QR code's bytes
    Column("pdf_digest", "text", False),    # SHA-256 of the signed PDF
), ("issuance_id",))

_INDEXES = (
    Index("certificate_issuance_subject", "certificate_issuance", "subject_code"),
    Index("certificate_issuance_at", "certificate_issuance", "issued_at"),
)

_CODES = ("subject_code", "requester_code", "principal_code")

#: The issuance records as Arrow: codes as uint64, members and items as lists.
ISSUANCE_SCHEMA: pa.Schema = pa.schema([
    pa.field(c.name, pa.list_(pa.uint64()) if c.name == "member_codes"
             else pa.list_(pa.string()) if c.name == "items"
             else pa.uint64() if c.name in _CODES
             else {"text": pa.string(), "int": pa.int64(), "ts": pa.timestamp("us", "UTC")}[
                 c.type], c.nullable)
    for c in ISSUANCE_TABLE.columns
])


def migration_statements(ddl: Ddl) -> list[str]:
    """The register's schema step that adds the certificates issued."""
    return [ddl.create_table(ISSUANCE_TABLE), *(ddl.create_index(i) for i in _INDEXES)]


# -- wide-area certificates (広域交付, jukicore.certificates.wide_area) ---------------------------

#: At the residence municipality: every record provided to another municipality for a
#: wide-area certificate, one row per request (the requesting municipality's node id and
#: its request id), with what was asked, how the requester was identified there, the
#: right, and digests of the request and of the answer sent (the same request id again is
#: answered with the same data, recomputed and checked against the digest, and recorded
#: once; the data itself is not copied here: it stays in the register alone).
WIDE_PROVISION_TABLE = Table("certificate_wide_provision", (
    Column("requester_lg", "text", False),   # the municipality that asked (its node id)
    Column("request_id", "text", False),     # that municipality's request id
    Column("provided_at", "ts", False),
    Column("requester_actor", "text", False),  # the operator there, as it said
    Column("scope", "text", False),          # person / household
    Column("subject_code", "int", False),    # the person asked about
    Column("member_codes", "text", False),   # 11-digit codes provided, comma-separated
    Column("items", "text", False),          # optional items provided, comma-separated
    Column("identity_kind", "text", False),  # photo_id / card
    Column("identity_ref", "text", False),
    Column("requester_code", "int", False),  # the requester (the person or a member)
    Column("right_kind", "text", False),     # self / household
    Column("request_digest", "text", False),  # SHA-256 of the canonical request
    Column("answer_digest", "text", False),  # SHA-256 of the canonical answer sent
), ("requester_lg", "request_id"))

#: At the issuing municipality: each wide-area request it made and the certificate it
#: issued with the answer (one request id, one certificate).
WIDE_REQUEST_TABLE = Table("certificate_wide_request", (
    Column("request_id", "text", False),
    Column("home_lg_code", "text", False),   # the residence municipality asked
    Column("issuance_id", "text", False),    # certificate_issuance.issuance_id
    Column("issued_at", "ts", False),
), ("request_id",))

_WIDE_INDEXES = (
    Index("certificate_wide_provision_subject", "certificate_wide_provision", "subject_code"),
    Index("certificate_wide_provision_at", "certificate_wide_provision", "provided_at"),
    Index("certificate_wide_request_issuance", "certificate_wide_request", "issuance_id",
          True),
)

#: The provisions as Arrow (:func:`jukicore.certificates.wide_area.provisions`): codes as
#: uint64, members and items as lists; the digests are not part of it.
PROVISION_SCHEMA: pa.Schema = pa.schema([
    pa.field(c.name, pa.list_(pa.uint64()) if c.name == "member_codes"
             else pa.list_(pa.string()) if c.name == "items"
             else pa.uint64() if c.name in ("subject_code", "requester_code")
             else {"text": pa.string(), "int": pa.int64(), "ts": pa.timestamp("us", "UTC")}[
                 c.type], c.nullable)
    for c in WIDE_PROVISION_TABLE.columns if not c.name.endswith("_digest")
])


def wide_area_statements(ddl: Ddl) -> list[str]:
    """The register's schema step that adds the wide-area certificates' tables."""
    return [ddl.create_table(WIDE_PROVISION_TABLE), ddl.create_table(WIDE_REQUEST_TABLE),
            *(ddl.create_index(i) for i in _WIDE_INDEXES)]
