"""`HubSpotDestination`: contacts, companies, deals, notes, tags and associations in HubSpot.

How each object avoids duplicates when the hub's at-least-once queue writes it twice
(shared/reference/crm-apis.md §6):

- contacts: batch read by email, then batch upsert with `idProperty=email` (new) or batch
  update by id (existing, only the properties the merge rules allow). Without an email:
  by `external_id_property` (unique) read, then create; phone is never used to merge.
- companies: by domain (search; domain is not unique in HubSpot, so no upsert by it), then
  by `external_id_property`; new ones are created through an upsert by that property.
- deals: batch read, then batch upsert with `idProperty=<external_id_property>` (unique).
- notes: a key (source id + kind, or a digest) in `external_id_property`: searched before
  create (`note_dedupe: search`) or upserted by (`note_dedupe: upsert`).

Every write reads first, so an existing value is only replaced where `overwrite` says so.
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Final

from hub.canonical import Activity, Company, Contact, Deal, DealStatus
from hub.destination import (
    ActivityWrite,
    ContactWrite,
    DealWrite,
    Destination,
    DestinationSettings,
    ItemResult,
    Written,
)
from hub.destinations.hubspot import merge, schema
from hub.destinations.hubspot.api import BatchInput, HubSpotApi, Record
from hub.destinations.hubspot.errors import ConflictError
from hub.destinations.hubspot.keys import activity_key, deal_key, external_key
from hub.destinations.hubspot.settings import HubSpotSettings
from hub.errors import DeliveryError, PermanentDeliveryError

__all__ = ["HubSpotDestination"]

log = logging.getLogger(__name__)

#: HUBSPOT_DEFINED association type ids (hubspot-api-client `AssociationTypes`) for notes
#: created with their associations in one call.
_NOTE_TO_CONTACT: Final = 202
_NOTE_TO_DEAL: Final = 214
_CLOSED: Final = (DealStatus.won, DealStatus.lost)


def _record_id(record: Record) -> str:
    return str(record["id"])


def _props(record: Record | None) -> dict[str, Any] | None:
    return None if record is None else dict(record.get("properties") or {})


def _as_result(outcome: Record | DeliveryError) -> ItemResult:
    return outcome if isinstance(outcome, DeliveryError) else Written(_record_id(outcome))


def _unwrap(result: ItemResult) -> str:
    if isinstance(result, Written):
        return result.id
    raise result


class HubSpotDestination(Destination):
    """HubSpot CRM (`type: hubspot`).

    Example::

        crm = HubSpotDestination(HubSpotSettings(access_token="pat-na1-…"),
                                 client=httpx.Client(base_url="https://api.hubapi.com"))
        contact_id = crm.upsert_contact(Contact(email="ada@example.com", tags={"vip"}))
    """

    name: ClassVar[str] = "hubspot"
    settings_model: ClassVar[type[DestinationSettings]] = HubSpotSettings
    #: HubSpot batch endpoints take 100 inputs (crm-apis.md §1.6); companies go one by one
    #: (found by a domain search, which has no batch form).
    batch_limits: ClassVar[dict[str, int]] = {"contact": 100, "deal": 100, "activity": 100}
    #: Free/Starter private app: 100 requests per rolling 10 s (crm-apis.md §1.6).
    rate_limit: ClassVar[tuple[int, float] | None] = (100, 10.0)

    settings: HubSpotSettings

    def __init__(
        self, settings: HubSpotSettings, *, instance_id: str | None = None, client: Any = None
    ) -> None:
        super().__init__(settings, instance_id=instance_id, client=client)
        self.api = HubSpotApi(lambda: self.client, settings.access_token, settings.api_version)
        #: Options of the multi-checkbox tags property known to exist (None: not read yet).
        self._tag_options: set[str] | None = None
        self._tags_are_text = False

    # -- what the delivery layer asks ----------------------------------------------------------

    def base_url(self) -> str:
        return self.settings.base_url

    def account_key(self) -> str:
        secret = self.settings.access_token.get_secret_value()
        digest = hashlib.sha256(f"{self.settings.base_url}\n{secret}".encode()).hexdigest()[:16]
        return f"hubspot:{digest}"

    def request_budget(self) -> tuple[int, float]:
        return self.settings.budget()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def check(self) -> list[str]:
        return schema.check(self.api, self.settings)

    def ensure_properties(self) -> list[str]:
        """The one-time setup: create the external-id and tags properties that are missing;
        returns what was created. Needs the `crm.schemas.*.write` scopes."""
        return schema.ensure_properties(self.api, self.settings)

    # -- property lists ------------------------------------------------------------------------

    def _uses_external_id(self, kind: str) -> bool:
        return kind in self.settings.external_id_objects

    def _contact_reads(self) -> list[str]:
        s = self.settings
        names = {"email", "lifecyclestage", *s.properties.values()}
        if s.tags_property:
            names.add(s.tags_property)
        if self._uses_external_id("contacts"):
            names.add(s.external_id_property)
        return sorted(names)

    def _company_reads(self) -> list[str]:
        names = {"domain", *self.settings.company_properties.values()}
        if self._uses_external_id("companies"):
            names.add(self.settings.external_id_property)
        return sorted(names)

    def _deal_reads(self) -> list[str]:
        return sorted(
            {
                "dealname",
                "dealstage",
                "pipeline",
                self.settings.external_id_property,
                *self.settings.deal_properties.values(),
            }
        )

    # -- contacts ------------------------------------------------------------------------------

    def upsert_contact(self, contact: Contact, *, known_id: str | None = None) -> str:
        return _unwrap(self.upsert_contacts([ContactWrite(contact, known_id=known_id)])[0])

    def upsert_contacts(self, writes: Sequence[ContactWrite]) -> list[ItemResult]:
        """Read by known id and by email (2 batch reads at most), then one batch update of the
        existing contacts that change and one batch upsert by email of the new ones.

        Contacts whose merge does not depend on HubSpot's values (see `_merge_needs_read`)
        skip the reads: they go straight into the upsert by email (one call per batch)."""
        reads = self._contact_reads()
        found: dict[int, Record] = {}
        blind = {i for i, w in enumerate(writes) if w.contact.email and not self._merge_needs_read(w.contact)}
        known = {i: w.known_id for i, w in enumerate(writes) if w.known_id and i not in blind}
        if known:
            by_id = {_record_id(r): r for r in self.api.batch_read("contacts", list(known.values()), reads)}
            found.update({i: by_id[k] for i, k in known.items() if k in by_id})
        emails = {
            i: w.contact.email
            for i, w in enumerate(writes)
            if i not in found and i not in blind and w.contact.email
        }
        if emails:
            records = self.api.batch_read("contacts", list(emails.values()), reads, id_property="email")
            by_email = {str((_props(r) or {}).get("email") or "").lower(): r for r in records}
            found.update({i: by_email[e] for i, e in emails.items() if e in by_email})

        def target(i: int) -> str | None:
            if i in found:
                return f"id:{_record_id(found[i])}"
            email = writes[i].contact.email
            return f"email:{email}" if email else None

        now, later = _first_of_each(range(len(writes)), target)
        results: list[ItemResult | None] = [None] * len(writes)
        planned = {i: self._contact_changes(writes[i].contact, _props(found.get(i))) for i in now}
        self._ensure_tag_options(planned.values())
        updates = [
            (i, BatchInput(planned[i], id=_record_id(found[i]))) for i in now if i in found and planned[i]
        ]
        upserts = [
            (i, BatchInput(planned[i], id=writes[i].contact.email, id_property="email"))
            for i in now
            if i not in found and writes[i].contact.email
        ]
        for i in now:
            if i in found and not planned[i]:
                results[i] = Written(_record_id(found[i]))  # nothing new: no write
        self._write_batch("contacts", "update", updates, results)
        self._write_batch(
            "contacts",
            "upsert",
            upserts,
            results,
            match_key=lambda r: str((_props(r) or {}).get("email") or "").lower(),
        )
        log.debug(
            "hubspot %s: contacts: %d updated, %d upserted by email, %d unchanged",
            self.instance_id,
            len(updates),
            len(upserts),
            len(now) - len(updates) - len(upserts),
        )
        for i in now:
            if results[i] is None:  # no email and not found by known id
                results[i] = self._each(self._contact_without_email, writes[i].contact)
        if later:
            for i, result in zip(later, self.upsert_contacts([writes[i] for i in later]), strict=True):
                results[i] = result
        return _complete(results)

    def _merge_needs_read(self, contact: Contact) -> bool:
        """Whether sending this contact needs HubSpot's current values first: a field the hub
        may only fill (not in `overwrite`), a lifecycle stage (forward only) or tags (a union).
        The email is the upsert key, so it never needs one."""
        s = self.settings
        if contact.lifecycle_stage is not None and contact.lifecycle_stage.value in s.lifecycle_stages:
            return True
        if s.tags_property and contact.tags:
            return True
        desired, owned = merge.to_properties(merge.contact_fields(contact), s.properties, s.overwrite)
        return any(prop not in owned for prop in desired if prop != "email")

    def _contact_changes(self, contact: Contact, current: dict[str, Any] | None) -> dict[str, str]:
        s = self.settings
        desired, owned = merge.to_properties(merge.contact_fields(contact), s.properties, s.overwrite)
        props = merge.changes(current, desired, owned)
        stage = merge.forward_stage(
            (current or {}).get("lifecyclestage"), contact.lifecycle_stage, s.lifecycle_stages
        )
        if stage:
            props["lifecyclestage"] = stage
        if s.tags_property and contact.tags:
            tags = merge.merged_tags((current or {}).get(s.tags_property), contact.tags)
            if tags:
                props[s.tags_property] = tags
        return props

    def _contact_without_email(self, contact: Contact) -> str:
        """Keyed by the external id when there is one; otherwise created (a phone is a
        candidate only, never merged on automatically: crm-apis.md §6)."""
        s = self.settings
        key = external_key(contact.external_ids) if self._uses_external_id("contacts") else None
        if key is None:
            return _record_id(self.api.create("contacts", self._contact_changes(contact, None)))
        record = self.api.get("contacts", key, self._contact_reads(), id_property=s.external_id_property)
        if record is None:
            props = {**self._contact_changes(contact, None), s.external_id_property: key}
            try:
                return _record_id(self.api.create("contacts", props))
            except ConflictError as exc:  # a retry racing its own first attempt
                if exc.existing_id is None:
                    raise
                record = self.api.get("contacts", exc.existing_id, self._contact_reads())
                if record is None:
                    raise
        props = self._contact_changes(contact, _props(record))
        self._ensure_tag_options([props])
        if props and self.api.update("contacts", _record_id(record), props) is None:
            raise PermanentDeliveryError(f"HubSpot contact {_record_id(record)} vanished during the update")
        return _record_id(record)

    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        prop = self.settings.tags_property
        if not prop:
            return
        record = self.api.get("contacts", contact_id, [prop])
        if record is None:
            raise PermanentDeliveryError(f"HubSpot has no contact with id {contact_id}")
        value = merge.merged_tags((_props(record) or {}).get(prop), list(tags))
        if value:
            self._ensure_tag_options([{prop: value}])
            if self.api.update("contacts", contact_id, {prop: value}) is None:
                raise PermanentDeliveryError(f"HubSpot has no contact with id {contact_id}")

    def _ensure_tag_options(self, planned: Iterable[dict[str, str]]) -> None:
        """A multi-checkbox property only takes values that are options: add the new tags as
        options first (read fresh, then a union, to keep other workers' additions)."""
        prop = self.settings.tags_property
        if not prop or self._tags_are_text:
            return
        wanted = {t for props in planned for t in (props.get(prop) or "").split(merge.TAG_SEPARATOR) if t}
        if not wanted or (self._tag_options is not None and wanted <= self._tag_options):
            return
        definition = self.api.get_property("contacts", prop)
        if definition is None:
            raise PermanentDeliveryError(
                f"HubSpot contact property {prop!r} (tags_property) does not exist: run "
                "ensure_properties() or create a multiple-checkboxes property, or set tags_property: null"
            )
        if definition.get("type") != "enumeration":
            self._tags_are_text = True
            return
        # Sent back as OptionInput (label, value, displayOrder, hidden, description) only.
        options = [
            {k: o[k] for k in ("label", "value", "displayOrder", "hidden", "description") if k in o}
            for o in definition.get("options") or []
        ]
        values = {str(o.get("value")) for o in options}
        missing = sorted(wanted - values)
        if missing:
            options += [{"label": t, "value": t, "hidden": False, "displayOrder": -1} for t in missing]
            self.api.update_property("contacts", prop, {"options": options})
        self._tag_options = values | set(missing)

    # -- companies -----------------------------------------------------------------------------

    def upsert_company(self, company: Company, *, known_id: str | None = None) -> str:
        s = self.settings
        reads = self._company_reads()
        record = self.api.get("companies", known_id, reads) if known_id else None
        domain_prop = s.company_properties.get("domain", "domain")
        if record is None and company.domain:
            hits = self.api.search(
                "companies", [{"propertyName": domain_prop, "operator": "EQ", "value": company.domain}], reads
            )
            record = min(hits, key=lambda r: int(_record_id(r))) if hits else None  # the oldest
        key = external_key(company.external_ids) if self._uses_external_id("companies") else None
        if record is None and key:
            record = self.api.get("companies", key, reads, id_property=s.external_id_property)
        desired, owned = merge.to_properties(
            merge.company_fields(company), s.company_properties, s.overwrite, prefix="company."
        )
        if record is not None:
            props = merge.changes(_props(record), desired, owned)
            if props and self.api.update("companies", _record_id(record), props) is None:
                raise PermanentDeliveryError(
                    f"HubSpot company {_record_id(record)} vanished during the update"
                )
            return _record_id(record)
        if key:  # created through the unique key: a retry after a lost answer finds it again
            written = self.api.batch_write(
                "companies",
                "upsert",
                [
                    BatchInput(
                        {**desired, s.external_id_property: key}, id=key, id_property=s.external_id_property
                    )
                ],
            )
            return _unwrap(_as_result(written[0]))
        try:
            return _record_id(self.api.create("companies", desired))
        except ConflictError as exc:
            if exc.existing_id is None:
                raise
            return exc.existing_id

    def link_contact_company(self, contact_id: str, company_id: str) -> None:
        problem = self.api.associate("contacts", "companies", [(contact_id, company_id)])[0]
        if problem is not None:
            raise problem

    # -- deals ---------------------------------------------------------------------------------

    def upsert_deal(
        self, deal: Deal, *, contact_id: str | None, company_id: str | None, known_id: str | None = None
    ) -> str:
        write = DealWrite(deal, known_id=known_id, contact_id=contact_id, company_id=company_id)
        return _unwrap(self.upsert_deals([write])[0])

    def upsert_deals(self, writes: Sequence[DealWrite]) -> list[ItemResult]:
        """Batch read (known ids, keys), batch update / batch upsert by the unique key, then
        the deal->contact and deal->company default associations."""
        s = self.settings
        prop = s.external_id_property
        keyed = self._uses_external_id("deals")
        keys = [deal_key(w.deal, w.contact_id) if keyed else None for w in writes]
        reads = self._deal_reads()
        found: dict[int, Record] = {}
        known = {i: w.known_id for i, w in enumerate(writes) if w.known_id}
        if known:
            by_id = {_record_id(r): r for r in self.api.batch_read("deals", list(known.values()), reads)}
            found.update({i: by_id[k] for i, k in known.items() if k in by_id})
        lookup = {i: k for i, k in enumerate(keys) if i not in found and k}
        if lookup:
            records = self.api.batch_read("deals", list(lookup.values()), reads, id_property=prop)
            by_key = {str((_props(r) or {}).get(prop)): r for r in records}
            found.update({i: by_key[k] for i, k in lookup.items() if k in by_key})

        def target(i: int) -> str | None:
            return f"id:{_record_id(found[i])}" if i in found else (f"key:{keys[i]}" if keys[i] else None)

        now, later = _first_of_each(range(len(writes)), target)
        results: list[ItemResult | None] = [None] * len(writes)
        updates: list[tuple[int, BatchInput]] = []
        upserts: list[tuple[int, BatchInput]] = []
        for i in now:
            try:
                props = self._deal_changes(writes[i].deal, keys[i], _props(found.get(i)))
            except PermanentDeliveryError as exc:
                results[i] = exc
                continue
            if i in found:
                if props:
                    updates.append((i, BatchInput(props, id=_record_id(found[i]))))
                else:
                    results[i] = Written(_record_id(found[i]))
            elif keys[i]:
                upserts.append((i, BatchInput({**props, prop: str(keys[i])}, id=keys[i], id_property=prop)))
            else:  # no key at all: nothing to deduplicate by (reported by check())
                results[i] = self._each(self._create_record, "deals", props)
        log.debug(
            "hubspot %s: deals: %d updated, %d upserted by key", self.instance_id, len(updates), len(upserts)
        )
        self._write_batch("deals", "update", updates, results)
        self._write_batch(
            "deals", "upsert", upserts, results, match_key=lambda r: str((_props(r) or {}).get(prop) or "")
        )
        self._associate(writes, results, now)
        if later:
            for i, result in zip(later, self.upsert_deals([writes[i] for i in later]), strict=True):
                results[i] = result
        return _complete(results)

    def _deal_changes(self, deal: Deal, key: str | None, current: dict[str, Any] | None) -> dict[str, str]:
        s = self.settings
        fields = merge.deal_fields(deal)
        fields.setdefault("title", f"Order {key.split(':', 1)[-1]}" if key else "Deal")
        desired, owned = merge.to_properties(fields, s.deal_properties, s.overwrite, prefix="deal.")
        props = merge.changes(current, desired, owned)
        pipeline, stage = self._pipeline_and_stage(deal)
        held = (current or {}).get("dealstage")
        if current is None:
            props.update(pipeline=pipeline, dealstage=stage or s.default_deal_stage)
        elif stage and stage != held:
            reopening = deal.status is DealStatus.open and held in s.deal_status_stages.values()
            if not held or ("deal.stage" in s.overwrite and not reopening):
                props.update(pipeline=pipeline, dealstage=stage)
        return props

    def _pipeline_and_stage(self, deal: Deal) -> tuple[str, str | None]:
        """HubSpot pipeline id and stage id (None: no stage to set) for a canonical deal."""
        s = self.settings
        pipeline = s.deal_pipelines.get(deal.pipeline) if deal.pipeline else s.default_pipeline
        if pipeline is None:
            raise PermanentDeliveryError(
                f"deal pipeline {deal.pipeline!r} has no HubSpot pipeline id: add it to deal_pipelines"
            )
        if deal.status in _CLOSED:
            stage = s.deal_status_stages.get(deal.status.value)
            if stage is None:
                raise PermanentDeliveryError(
                    f"deal status {deal.status.value!r} has no HubSpot stage id: add it to deal_status_stages"
                )
            return pipeline, stage
        if deal.stage:
            stage = s.deal_stages.get(deal.stage)
            if stage is None:
                raise PermanentDeliveryError(
                    f"deal stage {deal.stage!r} has no HubSpot stage id: add it to deal_stages"
                )
            return pipeline, stage
        return pipeline, None

    def _associate(
        self, writes: Sequence[DealWrite], results: list[ItemResult | None], indexes: list[int]
    ) -> None:
        """deal->contact and deal->company links for the deals just written; a failed link
        fails that deal (its retry re-upserts, which changes nothing, and links again)."""
        for to_kind, attr in (("contacts", "contact_id"), ("companies", "company_id")):
            pairs = [
                (i, (r.id, getattr(writes[i], attr)))
                for i in indexes
                if isinstance(r := results[i], Written) and getattr(writes[i], attr)
            ]
            if not pairs:
                continue
            problems = self.api.associate("deals", to_kind, [p for _, p in pairs])
            for (i, _), problem in zip(pairs, problems, strict=True):
                if problem is not None:
                    results[i] = problem

    # -- notes ---------------------------------------------------------------------------------

    def add_activity(
        self, activity: Activity, *, contact_id: str | None, deal_id: str | None, known_id: str | None = None
    ) -> str:
        write = ActivityWrite(activity, known_id=known_id, contact_id=contact_id, deal_id=deal_id)
        return _unwrap(self.add_activities([write])[0])

    def add_activities(self, writes: Sequence[ActivityWrite]) -> list[ItemResult]:
        """Notes on the contact (and deal). `search`: one search for the batch's keys, then
        one batch create (associations inline) of the missing notes; `upsert`: one batch
        upsert by the key, then the default associations."""
        s = self.settings
        results: list[ItemResult | None] = [None] * len(writes)
        for i, w in enumerate(writes):
            if w.known_id:
                record = self._each_record(self.api.update, "notes", w.known_id, self._note_properties(w))
                if record is not None:
                    results[i] = record
        pending = [i for i, r in enumerate(results) if r is None]
        keyed = self._uses_external_id("notes")
        keys = {i: activity_key(writes[i].activity, writes[i].contact_id) for i in pending}
        if keyed and s.note_dedupe == "upsert":
            self._upsert_notes(writes, pending, keys, results)
            return _complete(results)
        if keyed:
            existing = self._find_notes(list(set(keys.values())))
            for i in pending:
                if keys[i] in existing:
                    results[i] = Written(existing[keys[i]])
        creates: dict[str, int] = {}
        for i in pending:
            if results[i] is None and (not keyed or keys[i] not in creates):
                creates[keys[i] if keyed else str(i)] = i
        inputs = [
            (
                i,
                BatchInput(
                    self._note_properties(writes[i], keys[i] if keyed else None),
                    associations=self._note_links(writes[i]),
                ),
            )
            for i in creates.values()
        ]
        log.debug(
            "hubspot %s: notes: %d created, %d found",
            self.instance_id,
            len(inputs),
            len(pending) - len(inputs),
        )
        self._write_batch("notes", "create", inputs, results)
        for i in creates.values():  # a unique key already taken: the note is there (a retry)
            result = results[i]
            if isinstance(result, ConflictError) and result.existing_id:
                results[i] = Written(result.existing_id)
        for i in pending:  # the same note twice in one batch: one note, one id
            if results[i] is None:
                results[i] = results[creates[keys[i]]]
        return _complete(results)

    def _upsert_notes(
        self,
        writes: Sequence[ActivityWrite],
        pending: list[int],
        keys: dict[int, str],
        results: list[ItemResult | None],
    ) -> None:
        prop = self.settings.external_id_property
        now, later = _first_of_each(pending, lambda i: keys[i])
        inputs = [
            (i, BatchInput(self._note_properties(writes[i], keys[i]), id=keys[i], id_property=prop))
            for i in now
        ]
        self._write_batch(
            "notes", "upsert", inputs, results, match_key=lambda r: str((_props(r) or {}).get(prop) or "")
        )
        for to_kind, attr in (("contacts", "contact_id"), ("deals", "deal_id")):
            pairs = [
                (i, (r.id, getattr(writes[i], attr)))
                for i in now
                if isinstance(r := results[i], Written) and getattr(writes[i], attr)
            ]
            if pairs:
                for (i, _), problem in zip(
                    pairs, self.api.associate("notes", to_kind, [p for _, p in pairs]), strict=True
                ):
                    if problem is not None:
                        results[i] = problem
        for i in later:
            results[i] = results[now[[keys[j] for j in now].index(keys[i])]]

    def _find_notes(self, keys: list[str]) -> dict[str, str]:
        """key -> note id for the keys HubSpot already has (search lags writes: §1.4)."""
        prop = self.settings.external_id_property
        found: dict[str, str] = {}
        for start in range(0, len(keys), 100):
            part = keys[start : start + 100]
            for record in self.api.search(
                "notes", [{"propertyName": prop, "operator": "IN", "values": part}], [prop]
            ):
                value = str((_props(record) or {}).get(prop) or "")
                if value and value not in found:
                    found[value] = _record_id(record)
        return found

    def _note_properties(self, write: ActivityWrite, key: str | None = None) -> dict[str, str]:
        activity = write.activity
        props = {
            "hs_timestamp": merge.hubspot_date(activity.occurred_at),
            "hs_note_body": _note_body(activity),
        }
        if key is not None:
            props[self.settings.external_id_property] = key
        return props

    @staticmethod
    def _note_links(write: ActivityWrite) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = []
        for target, type_id in ((write.contact_id, _NOTE_TO_CONTACT), (write.deal_id, _NOTE_TO_DEAL)):
            if target:
                links.append(
                    {
                        "to": {"id": target},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
                    }
                )
        return links

    # -- shared helpers ------------------------------------------------------------------------

    def _write_batch(
        self,
        kind: str,
        verb: str,
        planned: list[tuple[int, BatchInput]],
        results: list[ItemResult | None],
        *,
        match_key: Callable[[Record], str] | None = None,
    ) -> None:
        if not planned:
            return
        inputs = [item for _, item in planned]
        for (i, _), outcome in zip(
            planned, self.api.batch_write(kind, verb, inputs, key_of=match_key), strict=True
        ):
            results[i] = _as_result(outcome)

    @staticmethod
    def _each(write: Callable[..., str], *args: Any) -> ItemResult:
        """One write of a batch on its own: its error is that input's result."""
        try:
            return Written(write(*args))
        except DeliveryError as exc:
            return exc

    @staticmethod
    def _each_record(write: Callable[..., Record | None], *args: Any) -> ItemResult | None:
        """Like `_each`; None when the record is gone (404), for the known-id fallback."""
        try:
            record = write(*args)
        except DeliveryError as exc:
            return exc
        return None if record is None else Written(_record_id(record))

    def _create_record(self, kind: str, props: dict[str, str]) -> str:
        return _record_id(self.api.create(kind, props))


def _first_of_each(
    indexes: Iterable[int], target: Callable[[int], str | None]
) -> tuple[list[int], list[int]]:
    """Split writes so that no batch names one record twice (HubSpot refuses duplicate ids
    in a batch): the first write per target now, the rest in a following round."""
    seen: set[str] = set()
    now: list[int] = []
    later: list[int] = []
    for i in indexes:
        key = target(i)
        if key is not None and key in seen:
            later.append(i)
        else:
            now.append(i)
            if key is not None:
                seen.add(key)
    return now, later


def _complete(results: list[ItemResult | None]) -> list[ItemResult]:
    return [
        r if r is not None else PermanentDeliveryError("HubSpot adapter produced no result for this write")
        for r in results
    ]


def _note_body(activity: Activity) -> str:
    """The note as HubSpot's rich text: kind and subject, body, then metadata lines."""
    title = activity.kind.replace("_", " ")
    if activity.subject:
        title = f"{title}: {activity.subject}"
    parts = [f"<p><strong>{html.escape(title)}</strong></p>"]
    if activity.body:
        parts.append("<p>" + "<br>".join(html.escape(line) for line in activity.body.splitlines()) + "</p>")
    if activity.metadata:
        items = "".join(
            f"<li>{html.escape(str(k))}: {html.escape(merge.text(v) or '')}</li>"
            for k, v in sorted(activity.metadata.items())
            if merge.text(v)
        )
        if items:
            parts.append(f"<ul>{items}</ul>")
    return "".join(parts)
