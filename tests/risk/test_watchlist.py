"""Watch-list screening: the file formats, each entry type, normalisation, whole-token names,
BIC8 vs BIC11, countries inside BICs, and reloading without a restart."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from chain_gateway.errors import ConfigurationError
from chain_gateway.risk.watchlist import WatchList, WatchListSource, normalise_name, parse_csv, parse_jsonl, tokens

from .conftest import GB, instruction

CSV = """# operator watch list
type,value,list,reason
bic,BADBKPKK,OPERATOR-BLOCK,institution under investigation
bic,SHDYGB2LLON,OPERATOR-BLOCK,one branch only
country,KP,EU-SANCTIONS,comprehensive sanctions
name,Ivan Petrovich Sidorov,OFAC-SDN,SDN 12345
name,IRAN,EMBARGO,country name in free text
name,"Zoë  Ångström-Ørsted",PEP,politically exposed
"""


@pytest.fixture
def wl() -> WatchList:
    return WatchList.of(parse_csv(CSV, "test.csv"))


def hits(wl: WatchList, **overrides: object) -> list[tuple[str, str, str]]:
    return [(m.field, m.entry.type, m.value) for m in wl.screen(instruction(**overrides))]


# --- normalisation ------------------------------------------------------------------------
@pytest.mark.parametrize("raw,expected", [
    ("Zoë Ångström", ("zoe", "angstrom")),
    ("  IVAN   petrovich\tSIDOROV ", ("ivan", "petrovich", "sidorov")),
    ("Al-Qaida, Ltd.", ("al", "qaida", "ltd")),
    ("O'Brien & Sons", ("obrien", "sons")),
    ("U.S.A.", ("usa",)),
    ("Søren Œuvre Straße", ("soren", "oeuvre", "strasse")),
    ("Ｆｕｌｌｗｉｄｔｈ", ("fullwidth",)),  # NFKD compatibility folding
    ("Łódź", ("lodz",)),
    ("***", ()),
])
def test_tokens_normalise_case_accents_punctuation_and_spacing(raw: str, expected: tuple[str, ...]) -> None:
    assert tokens(raw) == expected


def test_normalise_name_joins_tokens() -> None:
    assert normalise_name(" Zoë  ÅNGSTRÖM-Ørsted ") == "zoe angstrom orsted"


# --- names --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Ivan Petrovich Sidorov", "ivan petrovich SIDOROV", "Ivan  Petrovich\u00a0Sidorov",
                                  "Mr. Ivan-Petrovich Sidorov Jr", "ÍVÀN PETROVICH SIDOROV"])
def test_name_entry_matches_party_name_after_normalisation(wl: WatchList, name: str) -> None:
    assert ("creditor.name", "name", "ivan petrovich sidorov") in hits(wl, creditor={"name": name})


@pytest.mark.parametrize("name", ["Ivan Sidorov", "Ivan Petrovich", "Ivanov Petrovich Sidorova"])
def test_name_entry_needs_the_whole_token_sequence(wl: WatchList, name: str) -> None:
    assert hits(wl, debtor={"name": name}) == []


def test_name_entry_with_accents_in_the_list_matches_plain_spelling(wl: WatchList) -> None:
    assert hits(wl, debtor={"name": "zoe angstrom orsted"}) == [("debtor.name", "name", "zoe angstrom orsted")]
    assert hits(wl, debtor={"name": "ZOË ÅNGSTRÖM ØRSTED"}) == [("debtor.name", "name", "zoe angstrom orsted")]


def test_no_substring_false_positives(wl: WatchList) -> None:
    assert hits(wl, remittance_info="PIRANHA aquarium supplies, invoice 7") == []
    assert hits(wl, creditor={"name": "Iranian Carpets Ltd"}) == []  # "iranian" is another token
    assert hits(wl, remittance_info="shipment to Iran, port of Bandar Abbas") == [
        ("remittance_info", "name", "iran")]


def test_remittance_info_is_screened_for_names(wl: WatchList) -> None:
    assert hits(wl, remittance_info="On behalf of IVAN P. SIDOROV") == []  # initials are not the name
    assert hits(wl, remittance_info="On behalf of ivan-petrovich-sidorov, ref 5") == [
        ("remittance_info", "name", "ivan petrovich sidorov")]


# --- BICs -------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", ["BADBKPKK", "BADBKPKKXXX", "BADBKPKKKHI"])
def test_bic8_entry_matches_every_branch_of_the_institution(wl: WatchList, agent: str) -> None:
    found = hits(wl, creditor_agent=agent)
    assert ("creditor_agent", "bic", agent if len(agent) == 11 else agent + "XXX") in found


def test_bic11_entry_matches_that_branch_only(wl: WatchList) -> None:
    assert ("debtor_agent", "bic", "SHDYGB2LLON") in hits(wl, debtor_agent="SHDYGB2LLON")
    assert hits(wl, debtor_agent="SHDYGB2L") == []
    assert hits(wl, debtor_agent="SHDYGB2LMAN") == []


def test_head_office_bic11_entry_names_the_institution() -> None:
    wl = WatchList.of(parse_csv("type,value\nbic,bad bkp kkxxx\n"))  # spaces and case tolerated
    assert hits(wl, creditor_agent="BADBKPKKLHR") == [("creditor_agent", "bic", "BADBKPKKLHR")]


def test_party_bic_is_screened(wl: WatchList) -> None:
    assert ("debtor.bic", "bic", "BADBKPKKXXX") in hits(wl, debtor={"name": "Some Bank", "bic": "BADBKPKK"})


# --- countries ----------------------------------------------------------------------------
def test_country_entry_matches_party_country(wl: WatchList) -> None:
    assert hits(wl, creditor={"name": "Trading Co", "country": "KP"}) == [("creditor.country", "country", "KP")]
    assert hits(wl, creditor={"name": "Trading Co", "country": "KR"}) == []


def test_country_entry_matches_the_country_inside_a_bic(wl: WatchList) -> None:
    assert hits(wl, creditor_agent="KORAKPPY") == [("creditor_agent.country", "country", "KP")]


def test_lower_case_country_in_the_list_is_normalised() -> None:
    wl = WatchList.of(parse_jsonl('{"type": "country", "value": "ir", "list": "X"}\n'))
    assert hits(wl, debtor={"country": "IR"}) == [("debtor.country", "country", "IR")]


def test_clean_payment_has_no_hits(wl: WatchList) -> None:
    assert hits(wl, debtor={"name": "Acme Corp", "country": "US"}, creditor={"name": "Globex GmbH", "country": "DE"},
                remittance_info="Invoice 2026-001") == []


def test_every_hit_is_reported_with_its_entry(wl: WatchList) -> None:
    matches = wl.screen(instruction(creditor_agent="BADBKPKK", creditor={"name": "Ivan Petrovich Sidorov",
                                                                          "country": "KP"}))
    # BADB KP KK: the BIC's own country is listed too
    assert {m.field for m in matches} == {"creditor_agent", "creditor_agent.country", "creditor.name",
                                          "creditor.country"}
    bic_hit = next(m for m in matches if m.field == "creditor_agent")
    assert bic_hit.as_dict()["entry"] == {"type": "bic", "value": "BADBKPKK", "list": "OPERATOR-BLOCK",
                                          "reason": "institution under investigation", "line": 3}


# --- file formats -------------------------------------------------------------------------
def test_jsonl_and_csv_load_the_same_entries(tmp_path: Path) -> None:
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text('# comment\n{"type": "name", "value": "Ivan Petrovich Sidorov", "list": "OFAC-SDN"}\n\n'
                     '{"type": "bic", "value": "BADBKPKK"}\n{"type": "country", "value": "KP"}\n')
    csv = tmp_path / "list.csv"
    csv.write_text("type,value,list\nname,Ivan Petrovich Sidorov,OFAC-SDN\nbic,BADBKPKK,\ncountry,KP,\n")
    a, b = WatchList.load(jsonl), WatchList.load(csv)
    assert [(e.type, e.key) for e in a.entries] == [(e.type, e.key) for e in b.entries] == [
        ("name", "ivan petrovich sidorov"), ("bic", "BADBKPKK"), ("country", "KP")]
    assert a.summary()["by_type"] == {"bic": 1, "country": 1, "name": 1}
    assert len(a.digest) == 64 and a.digest != b.digest


@pytest.mark.parametrize("content,message", [
    ("type,value\nbic,NOTABIC!\n", "not a BIC"),
    ("type,value\nbic,ABCDQQ22\n", "not a BIC"),  # QQ is no country
    ("type,value\ncountry,XY\n", "not an ISO 3166"),
    ("type,value\nname,---\n", "no letters"),
    ("type,value\nvessel,EVER GIVEN\n", "type must be one of"),
    ("type,value\nname,\n", "has no value"),
    ("kind,name\nname,x\n", "header"),
    ("type,value\nname,a,b,c\n", "columns"),
])
def test_bad_csv_lines_are_refused_with_their_line_number(content: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_csv(content, "w.csv")
    assert message in info.value.detail
    assert "w.csv:" in info.value.detail


def test_bad_jsonl_is_refused_with_its_line_number() -> None:
    with pytest.raises(ConfigurationError, match=r"w.jsonl:2: not a JSON object"):
        parse_jsonl('{"type": "country", "value": "KP"}\n{nope\n', "w.jsonl")
    with pytest.raises(ConfigurationError, match=r"w.jsonl:1: each line must be a JSON object"):
        parse_jsonl('["country", "KP"]\n', "w.jsonl")


def test_unknown_suffix_and_missing_file_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown format"):
        WatchList.load(tmp_path / "list.xlsx")
    with pytest.raises(ConfigurationError, match="cannot read"):
        WatchList.load(tmp_path / "missing.csv")
    with pytest.raises(ConfigurationError):
        WatchListSource(tmp_path / "missing.csv")  # a configured list that cannot be read stops start-up


# --- reloading ----------------------------------------------------------------------------
def _touch_later(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))  # a distinct mtime even on coarse clocks


def test_the_list_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("type,value\ncountry,KP\n")
    source = WatchListSource(path, check_interval_ms=0)
    assert [e.key for e in source.current().entries] == ["KP"]
    _touch_later(path, "type,value\ncountry,KP\nname,Ivan Petrovich Sidorov\n")
    assert [e.key for e in source.current().entries] == ["KP", "ivan petrovich sidorov"]
    assert source.current().screen(instruction(remittance_info="for Ivan Petrovich Sidorov"))


def test_a_broken_file_keeps_the_previous_list_in_force(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("type,value\ncountry,KP\n")
    source = WatchListSource(path, check_interval_ms=0)
    _touch_later(path, "type,value\ncountry,ZZ\n")
    assert [e.key for e in source.current().entries] == ["KP"]
    assert source.last_error is not None and "ZZ" in source.last_error
    with pytest.raises(ConfigurationError):
        source.reload()  # an explicit reload says so
    _touch_later(path, "type,value\ncountry,IR\n")
    assert [e.key for e in source.current().entries] == ["IR"] and source.last_error is None


def test_a_deleted_file_keeps_the_previous_list_in_force(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"type": "country", "value": "KP"}\n')
    source = WatchListSource(path, check_interval_ms=0)
    path.unlink()
    assert [e.key for e in source.current().entries] == ["KP"]


def test_the_check_interval_limits_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("type,value\ncountry,KP\n")
    source = WatchListSource(path, check_interval_ms=3_600_000)
    _touch_later(path, "type,value\ncountry,IR\n")
    assert [e.key for e in source.current().entries] == ["KP"]  # not checked again yet
    assert [e.key for e in source.reload().entries] == ["IR"]  # an explicit reload reads at once


def test_gb_demo_bank_is_not_hit_by_unrelated_entries(wl: WatchList) -> None:
    assert hits(wl, creditor_agent=GB) == []
