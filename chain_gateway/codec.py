"""Byte encodings of the on-chain units (CONTRACTS.md "Units"), for the chain layer.

One implementation serves the whole gateway: ``chain_gateway.instructions.codec``, which
validates what it encodes (the value is about to be signed or compared on-chain).
"""
from chain_gateway.instructions.codec import (
                                              bic_to_bytes11,
                                              bytes2_to_country,
                                              bytes3_to_currency,
                                              bytes11_to_bic,
                                              bytes16_to_uetr,
                                              country_to_bytes2,
                                              currency_to_bytes3,
                                              uetr_to_bytes16,
)

__all__ = [
                                              "bic_to_bytes11",
                                              "bytes2_to_country",
                                              "bytes3_to_currency",
                                              "bytes11_to_bic",
                                              "bytes16_to_uetr",
                                              "country_to_bytes2",
                                              "currency_to_bytes3",
                                              "uetr_to_bytes16",
]
