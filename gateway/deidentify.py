"""De-identification at ingest, and re-identification of the results that go back to the PACS.

Instances are de-identified with dicognito (DICOM PS3.15 basic application level confidentiality
profile: names, IDs, UIDs, dates shifted, addresses and other identifying attributes replaced or
removed), and free text, private attributes and the other attributes the profile removes but
dicognito keeps (:data:`PROFILE_REMOVED`; Patient's Age, Size and Weight among them) removed and Patient's Sex
emptied (:data:`EMPTIED`) at every level, before they leave for the service. The anonymizer
is seeded with a secret kept in the mapping database, so the same instance always gives the same
pseudonymous bytes (a repeated upload is recognised by the service) and the same patient always
gets the same pseudonym.

The mapping stays here, in SQLite: every pseudonymous UID with its original, and per study the
original identifying attributes with their pseudonyms. :meth:`Pseudonyms.reidentify` turns a
result the service made (a DICOM SEG or RTSTRUCT on the pseudonymous study) into one that carries
the original patient and study and references the original series and instances, so that it
lands next to its source series in the PACS. Burned-in text in the pixels is not looked at.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path

import pydicom
from dicognito.anonymizer import Anonymizer
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset

from gateway.sqlite_state import SqliteState

# The attributes of the patient and study that a result copies from its source: put back as they were.
RESTORED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDs",
    "StudyDate",
    "StudyDescription",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "InstitutionName",
)

# Attributes the basic profile removes (PS3.15 Table E.1-1, action X and its variants) that dicognito keeps as
# they are: free text, and identifying or clinical attributes outside the name, ID, UID, date and address types
# it replaces. Removed at every nesting level; private attributes (action X as a whole) are removed too.
PROFILE_REMOVED = (
    # The patient's body: the segmentation does not need it, and with the study date it narrows who it is.
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientBirthTime",  # dicognito shifts it only along with a birth date
    # Free text, locations, devices, contacts and issuers.
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "ImageComments",
    "PatientComments",
    "AdditionalPatientHistory",
    "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
    "ScheduledProcedureStepDescription",
    "AcquisitionComments",
    "DerivationDescription",
    "FrameComments",
    "IdentifyingComments",
    "ImagePresentationComments",
    "StudyComments",
    "VisitComments",
    "TextComments",
    "TextString",
    "InterpretationText",
    "InterpretationDiagnosisDescription",
    "ResultsComments",
    "ResultsID",
    "ReasonForStudy",
    "ReasonForTheRequestedProcedure",
    "ReasonForVisit",
    "RequestedContrastAgent",
    "DischargeDiagnosisDescription",
    "MedicalAlerts",
    "Allergies",
    "EthnicGroup",
    "PatientReligiousPreference",
    "PatientSexNeutered",
    "PatientState",
    "PregnancyStatus",
    "SmokingStatus",
    "SpecialNeeds",
    "BranchOfService",
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID",
    "ServiceEpisodeDescription",
    "DeviceSerialNumber",
    "DetectorID",
    "PatientInsurancePlanCodeSequence",
    "PatientPrimaryLanguageCodeSequence",
    "ReferencedPatientPhotoSequence",
    "AcquisitionProtocolDescription",
    "AcquisitionDeviceProcessingDescription",
    "CommentsOnThePerformedProcedureStep",
    "ConfidentialityConstraintOnPatientDataDescription",
    "ContributionDescription",
    "ImagingServiceRequestComments",
    "Impressions",
    "ModifiedImageDescription",
    "RequestedProcedureComments",
    "ReasonForTheImagingServiceRequest",
    "PreMedication",
    "PatientTransportArrangements",
    "PatientInstitutionResidence",
    "ScheduledPatientInstitutionResidence",
    "PerformedLocation",
    "RequestedProcedureLocation",
    "ScheduledProcedureStepLocation",
    "ScheduledStudyLocation",
    "ScheduledStudyLocationAETitle",
    "OrderEntererLocation",
    "PerformedStationAETitle",
    "PerformedStationName",
    "ScheduledStationAETitle",
    "ScheduledStationName",
    "GantryID",
    "GeneratorID",
    "CassetteID",
    "PlateID",
    "ModifyingDeviceID",
    "PersonAddress",
    "PersonTelephoneNumbers",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "OrderCallbackPhoneNumber",
    "HumanPerformerOrganization",
    "VerifyingOrganization",
    "InsurancePlanIdentification",
    "IssuerOfAdmissionID",
    "IssuerOfServiceEpisodeID",
    "InterpretationIDIssuer",
    "ResultsIDIssuer",
    "StudyIDIssuer",
    "TimezoneOffsetFromUTC",
    "TopicTitle",
    "TopicSubject",
    "TopicAuthor",
    "TopicKeywords",
)
_REMOVED_TAGS = frozenset(pydicom.datadict.tag_for_keyword(k) for k in PROFILE_REMOVED)

# Action Z (zero length or a dummy) that dicognito leaves as it is. Emptied rather than given a dummy: a
# dummy sex would be a false clinical statement in the service's records. Emptied before dicognito runs,
# since it draws the pseudonym's first name from the female or male names by this attribute. The original
# is kept in the mapping (:data:`RESTORED`) and put back into the results.
EMPTIED = ("PatientSex",)
_EMPTIED_TAGS = frozenset(pydicom.datadict.tag_for_keyword(k) for k in EMPTIED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uids (pseudonym TEXT PRIMARY KEY, original TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    pseudonym_study_uid TEXT PRIMARY KEY,
    original_study_uid TEXT NOT NULL,
    original TEXT NOT NULL,
    pseudonymous TEXT NOT NULL
);
"""


class Pseudonyms(SqliteState):
    """The secret seed and the original <-> pseudonym mapping, in one SQLite file (never sent anywhere,
    readable by its owner only)."""

    def __init__(self, path: Path) -> None:
        _owner_only(path)
        super().__init__(path, SCHEMA)
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO settings VALUES ('seed', ?)", (secrets.token_hex(32),))
        (seed,) = self._db.execute("SELECT value FROM settings WHERE name = 'seed'").fetchone()
        self._anonymizer = Anonymizer(seed=seed)

    def deidentify(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and record its mapping, committed before this returns); ``ds``."""
        self._record([self._deidentify(ds)])
        return ds

    def deidentify_folder(self, source: Path, target: Path) -> dict[str, str]:
        """De-identify every ``*.dcm`` in ``source`` into ``target``; original -> pseudonymous series UID.

        The mapping is committed (once for the folder) before this returns.
        """
        target.mkdir(parents=True, exist_ok=True)
        series: dict[str, str] = {}
        records = []
        for path in sorted(source.glob("*.dcm")):
            ds = pydicom.dcmread(path)
            original = str(ds.get("SeriesInstanceUID", ""))
            records.append(self._deidentify(ds))
            series[original] = str(ds.SeriesInstanceUID)
            ds.save_as(target / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        self._record(records)
        return series

    def _deidentify(self, ds: Dataset) -> tuple[list[tuple[str, str]], tuple[str, str, str, str]]:
        """Anonymize ``ds`` in place; its (pseudonym, original) UID pairs and its study row."""
        originals = sorted(_uids(ds))
        kept = {k: _json_value(ds, k) for k in RESTORED}
        original_study = str(ds.get("StudyInstanceUID", ""))
        _empty_profile_attributes(ds)
        self._anonymizer.anonymize(ds)
        _remove_profile_attributes(ds)
        _declare_deidentified(ds)
        pairs = [(self._pseudonym(uid), uid) for uid in originals]
        pseudonymous = {k: _json_value(ds, k) for k in RESTORED}
        study = (str(ds.get("StudyInstanceUID", "")), original_study, json.dumps(kept), json.dumps(pseudonymous))
        return pairs, study

    def _record(self, records: list[tuple[list[tuple[str, str]], tuple[str, str, str, str]]]) -> None:
        with self._transaction() as db:
            for pairs, study in records:
                db.executemany("INSERT OR IGNORE INTO uids (pseudonym, original) VALUES (?, ?)", pairs)
                db.execute("INSERT OR IGNORE INTO studies VALUES (?, ?, ?, ?)", study)

    def _pseudonym(self, uid: str) -> str:
        probe = Dataset()
        probe.file_meta = FileMetaDataset()
        probe.SOPInstanceUID = uid
        self._anonymizer.anonymize(probe)
        return str(probe.SOPInstanceUID)

    def pseudonym_of(self, original_uid: str) -> str | None:
        """The pseudonym recorded for an original UID."""
        row = self._db.execute("SELECT pseudonym FROM uids WHERE original = ?", (original_uid,)).fetchone()
        return str(row[0]) if row else None

    def original_of(self, pseudonym: str) -> str | None:
        """The original UID of a pseudonym, if this mapping made it."""
        row = self._db.execute("SELECT original FROM uids WHERE pseudonym = ?", (pseudonym,)).fetchone()
        return str(row[0]) if row else None

    def study(self, pseudonym_study_uid: str) -> dict[str, object] | None:
        """The original study UID and identifying attributes (and their pseudonyms) of a pseudonymous study."""
        row = self._db.execute(
            "SELECT original_study_uid, original, pseudonymous FROM studies WHERE pseudonym_study_uid = ?",
            (pseudonym_study_uid,),
        ).fetchone()
        if row is None:
            return None
        return {"study_uid": row[0], "original": json.loads(row[1]), "pseudonymous": json.loads(row[2])}

    def reidentify(self, ds: Dataset) -> Dataset:
        """Put the original UIDs, patient and study back into a result made on pseudonymous data (in place).

        Raises:
            KeyError: the result's study was not de-identified with this mapping.
        """
        study = self.study(str(ds.get("StudyInstanceUID", "")))
        if study is None:
            raise KeyError(f"study {ds.get('StudyInstanceUID')} is not in the pseudonym mapping {self.path}")

        def restore(dataset: Dataset, element: DataElement) -> None:
            if element.VR != "UI" or not element.value or element.keyword.endswith("ClassUID"):
                return
            if isinstance(element.value, str):
                element.value = self.original_of(element.value) or element.value
            else:
                element.value = [self.original_of(v) or v for v in element.value]

        ds.walk(restore)
        original = study["original"]
        assert isinstance(original, dict)
        kept = Dataset.from_json({_tag(k): v for k, v in original.items() if v is not None})
        for keyword in RESTORED:
            if keyword in ds:  # only what the result carries; absent in the original: left empty
                ds[keyword].value = kept[keyword].value if keyword in kept else None
        if "PatientIdentityRemoved" in ds:
            ds.PatientIdentityRemoved = "NO"
        for keyword in (
            "DeidentificationMethod",
            "DeidentificationMethodCodeSequence",
            "LongitudinalTemporalInformationModified",
        ):
            if keyword in ds:
                delattr(ds, keyword)
        return ds

    def reidentify_bytes(self, data: bytes) -> bytes:
        """:meth:`reidentify` of a DICOM file's bytes."""
        ds = pydicom.dcmread(io.BytesIO(data))
        self.reidentify(ds)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def _declare_deidentified(ds: Dataset) -> None:
    """Say what was done, as PS3.15 E.1.1 asks: identity removed, by the basic profile, dates shifted.

    dicognito moves dates by a per-patient offset instead of emptying them (intervals kept), which is
    the profile's Retain Longitudinal Temporal Information with Modified Dates option.
    """
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    codes = []
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = codes


def _owner_only(path: Path) -> None:
    """Create ``path`` (and tighten an existing one with its SQLite side files) to owner read/write only:
    it holds the secret seed and the original identifiers. SQLite gives new side files the database's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _empty_profile_attributes(ds: Dataset) -> None:
    """Empty the attributes of :data:`EMPTIED` that have a value, at every nesting level (in place)."""

    def empty(dataset: Dataset, element: DataElement) -> None:
        if element.tag in _EMPTIED_TAGS:
            element.value = None

    ds.walk(empty)


def _remove_profile_attributes(ds: Dataset) -> None:
    """Remove private attributes and those of :data:`PROFILE_REMOVED`, at every nesting level (in place)."""
    ds.remove_private_tags()  # recurses into sequences

    def strip(dataset: Dataset, element: DataElement) -> None:
        if element.tag in _REMOVED_TAGS:
            del dataset[element.tag]

    ds.walk(strip)


def _tag(keyword: str) -> str:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


def _json_value(ds: Dataset, keyword: str) -> dict[str, object] | None:
    """An attribute as DICOM JSON (its VR and value), or None when absent."""
    if keyword not in ds:
        return None
    element = ds[keyword]
    return element.to_json_dict(None, 0)


def _uids(ds: Dataset) -> set[str]:
    """Every UID in ``ds`` (nested too) that de-identification replaces: all but class and transfer syntax UIDs."""
    found: set[str] = set()

    def visit(dataset: Dataset, element: DataElement) -> None:
        if element.VR != "UI" or not element.value or element.keyword.endswith("ClassUID"):
            return
        if element.keyword == "TransferSyntaxUID":
            return
        found.update([element.value] if isinstance(element.value, str) else list(element.value))

    ds.walk(visit)
    if hasattr(ds, "file_meta"):
        ds.file_meta.walk(visit)
    return found
