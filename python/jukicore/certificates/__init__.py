"""Certificates of residence (住民票の写し, 除票の写し) at a municipality's counter.

>>> from jukicore.certificates import Certificates, PhotoId, Requester
>>> certs = Certificates(register, node_keys, mayor="千代田区長　山田　一郎")
>>> issued = certs.issue(resident_code, items=["relationship"], actor=clerk,
...                      requester=Requester(PhotoId("driver_license", "123456789012"),
...                                          name="佐藤太郎", resident_code=resident_code))
>>> issued.pdf            # the signed PDF (PAdES, with its signed QR code)
>>> issued.record         # the issuance as one Arrow row

Verification needs no store: :func:`verify_file` with a trust store. A resident of
another municipality gets a wide-area certificate (広域交付) with
:meth:`Certificates.issue_wide_area`, which asks their municipality over the network
(:mod:`jukicore.certificates.wide_area`, whose ``ROUTES`` that municipality serves). See
docs/certificates.md.
"""

from __future__ import annotations

from .compose import (
    PHOTO_ID_KINDS,
    CardHolder,
    CardPin,
    Composition,
    PhotoId,
    Requester,
    Right,
    card_holder,
    compose,
    judge_right,
)
from .items import ARTICLE7_ITEMS, FOREIGN_ITEMS, GROUPS, OPTIONAL_ITEMS, WIDE_AREA_ITEMS, wareki
from .payload import Payload, decode_payload, encode_payload
from .render import render_pdf
from .schema import ISSUANCE_SCHEMA
from .service import Certificates, Issued
from .verify import Verified, verify_certificate, verify_file

__all__ = [
    "ARTICLE7_ITEMS",
    "FOREIGN_ITEMS",
    "GROUPS",
    "ISSUANCE_SCHEMA",
    "OPTIONAL_ITEMS",
    "PHOTO_ID_KINDS",
    "WIDE_AREA_ITEMS",
    "CardHolder",
    "CardPin",
    "Certificates",
    "Composition",
    "Issued",
    "Payload",
    "PhotoId",
    "Requester",
    "Right",
    "Verified",
    "card_holder",
    "compose",
    "decode_payload",
    "encode_payload",
    "judge_right",
    "render_pdf",
    "verify_certificate",
    "verify_file",
    "wareki",
]
