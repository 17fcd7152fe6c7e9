//! Native test doubles for [`crate::platform`]: scripted HTTP, an in-memory store, a
//! recording log, a fake clock, fixed secrets and scripted client assertions, plus builders
//! for Graph JSON.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::bindings::m365sync::engine::credentials::CredentialError;
use crate::bindings::m365sync::engine::log::Level;
use crate::bindings::m365sync::engine::secrets::SecretError;
use crate::bindings::m365sync::engine::storage::StorageError;
use crate::graph::token::base64url_encode;
use crate::matching::MatchKeys;
use crate::platform::{
    Assertions, Clock, Env, Http, HttpRequest, HttpResponse, Log, Secrets, Store, TransportError,
};
use crate::types::{
    AccountFilter, Batch, Change, Cloud, CredentialKind, DataSet, Domain, Endpoints, Features,
    Group, Mailbox, MatchDecision, MatchKey, Organization, Person, PersonKey, PlatformOrganization,
    RemovalGuard, RemovalPolicy, ReportScope, StoredPerson, Subscription, SyncMode, SyncOptions,
    SyncRequest, Tenant, Usage,
};

pub const SECRET: &str = "S3cr3t~Value+With/Odd=Chars";

/// HTTP that answers from a script, in order, checking each request's method and URL
/// prefix ("GET https://graph.test/v1.0/users").
#[derive(Default)]
pub struct FakeHttp {
    script: VecDeque<(String, Result<HttpResponse, TransportError>)>,
    pub sent: Vec<HttpRequest>,
}

impl FakeHttp {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push_ok(&mut self, expect: &str, r: HttpResponse) {
        self.script.push_back((expect.to_owned(), Ok(r)));
    }

    pub fn push_err(&mut self, expect: &str, e: TransportError) {
        self.script.push_back((expect.to_owned(), Err(e)));
    }

    pub fn assert_done(&self) {
        assert!(
            self.script.is_empty(),
            "unused script entries: {:?}",
            self.script.iter().map(|(e, _)| e).collect::<Vec<_>>()
        );
    }
}

impl Http for FakeHttp {
    fn send(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent.push(req.clone());
        let line = format!("{} {}", req.method.as_str(), req.url);
        let (expect, answer) = self
            .script
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected request {line}"));
        assert!(line.starts_with(&expect), "expected {expect}, got {line}");
        answer
    }
}

#[derive(Default)]
pub struct FakeClock {
    pub now: u64,
    pub sleeps: Vec<u64>,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.now
    }
    fn wall_rfc3339(&self) -> String {
        "2024-05-01T00:00:00.000Z".into()
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.sleeps.push(ms);
        self.now += ms;
    }
}

pub struct FakeSecrets(pub BTreeMap<String, Result<String, SecretError>>);

impl Default for FakeSecrets {
    fn default() -> Self {
        let mut m = BTreeMap::new();
        m.insert("client-secret".into(), Ok(SECRET.into()));
        FakeSecrets(m)
    }
}

impl Secrets for FakeSecrets {
    fn get(&mut self, name: &str) -> Result<String, SecretError> {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| Err(SecretError::NotFound(name.into())))
    }
}

/// Client assertions from a script: each call takes the next answer; with none left, the
/// tenant has no assertion credential (`not-configured`). Every audience asked for is kept.
#[derive(Default)]
pub struct FakeCredentials {
    pub answers: VecDeque<Result<String, CredentialError>>,
    pub audiences: Vec<String>,
}

impl FakeCredentials {
    pub fn push(&mut self, answer: Result<String, CredentialError>) {
        self.answers.push_back(answer);
    }
}

impl Assertions for FakeCredentials {
    fn client_assertion(&mut self, audience: &str) -> Result<String, CredentialError> {
        self.audiences.push(audience.to_owned());
        self.answers.pop_front().unwrap_or_else(|| {
            Err(CredentialError::NotConfigured(
                "no certificate or federated token is configured for this tenant".into(),
            ))
        })
    }
}

/// The SHA-256 thumbprint of the fake certificate, as [`cert_assertion`] carries it.
pub const CERT_SHA256: [u8; 32] = [0xab; 32];

/// A client assertion as a host signs it with the fake certificate: `n` makes each unique
/// (its `jti` and its signature).
pub fn cert_assertion(n: u32) -> String {
    let header = serde_json::json!({
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": base64url_encode(&CERT_SHA256),
    });
    let claims = serde_json::json!({
        "aud": "https://login.test/tenant-1/oauth2/v2.0/token",
        "iss": "client-1",
        "sub": "client-1",
        "jti": format!("00000000-0000-4000-8000-{n:012}"),
        "nbf": 1_700_000_000,
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
    });
    format!(
        "{}.{}.U0lHTkFUVVJF-{n}-c2VjcmV0LXNpZ25hdHVyZQ",
        base64url_encode(header.to_string().as_bytes()),
        base64url_encode(claims.to_string().as_bytes())
    )
}

/// A federated token (workload identity federation) as another identity provider issues it.
pub fn federated_token() -> String {
    let header = serde_json::json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": "https://oidc.example.test/cluster-1",
        "sub": "system:serviceaccount:m365sync:engine",
        "aud": ["api://AzureADTokenExchange"],
        "exp": 1_700_003_600,
    });
    format!(
        "{}.{}.RkVERVJBVEVELVNJR05BVFVSRQ",
        base64url_encode(header.to_string().as_bytes()),
        base64url_encode(claims.to_string().as_bytes())
    )
}

#[derive(Default)]
pub struct FakeLog {
    pub lines: Vec<(Level, String)>,
    pub progress: Vec<(DataSet, u64, Option<u64>)>,
}

impl Log for FakeLog {
    fn log(&mut self, level: Level, message: &str) {
        self.lines.push((level, message.to_owned()));
    }
    fn progress(&mut self, phase: DataSet, done: u64, total: Option<u64>) {
        self.progress.push((phase, done, total));
    }
}

/// An in-memory store that applies batches like the host must (all of a batch), and finds
/// people by email and UPN as a host must: by the keys their upserts carried, never
/// normalising anything itself.
#[derive(Default)]
pub struct FakeStore {
    /// Written by commits or [`FakeStore::put`] (which also keep `keys`); a test may change
    /// a stored person's other fields in place.
    pub people: BTreeMap<String, StoredPerson>,
    /// The match keys each stored person came with (object id → keys).
    pub keys: BTreeMap<String, MatchKeys>,
    pub checkpoints: BTreeMap<String, String>,
    pub commits: Vec<Batch>,
    pub find_calls: usize,
    /// The number of keys of each find-people call.
    pub find_sizes: Vec<usize>,
    pub list_calls: usize,
    pub fail_commit: Option<StorageError>,
    pub groups: BTreeMap<String, Group>,
    pub members: BTreeMap<String, BTreeSet<String>>,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub organization: Option<Organization>,
    pub domains: BTreeMap<String, Domain>,
    pub mailboxes: BTreeMap<String, Mailbox>,
    /// Keyed by (object id, workload, period).
    pub usage: BTreeMap<(String, String, u16), Usage>,
    pub organizations: Vec<PlatformOrganization>,
    pub decisions: BTreeMap<String, MatchDecision>,
}

impl FakeStore {
    pub fn calls(&self) -> usize {
        self.find_calls + self.list_calls + self.commits.len()
    }

    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.commits.iter().flat_map(|b| b.changes.iter())
    }

    /// Stores a person as if the engine had written it: with the keys its upserts carry.
    pub fn put(&mut self, stored: StoredPerson) {
        let id = stored.person.object_id.clone();
        self.keys.insert(id.clone(), MatchKeys::of(&stored.person));
        self.people.insert(id, stored);
    }

    /// The stored person whose carried keys satisfy `f` (the lowest object id).
    fn find_by_key(&self, f: impl Fn(&MatchKeys) -> bool) -> Option<StoredPerson> {
        let (id, _) = self.keys.iter().find(|(_, k)| f(k))?;
        self.people.get(id).cloned()
    }
}

impl Store for FakeStore {
    fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self.checkpoints.get(key).cloned())
    }

    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        self.find_calls += 1;
        self.find_sizes.push(keys.len());
        Ok(keys
            .iter()
            .map(|k| match k {
                PersonKey::ObjectId(id) => self.people.get(id).cloned(),
                PersonKey::UserPrincipalName(upn) => {
                    self.find_by_key(|k| k.upn.as_ref() == Some(upn))
                }
                PersonKey::Email(mail) => self.find_by_key(|k| k.email.as_ref() == Some(mail)),
            })
            .collect())
    }

    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.list_calls += 1;
        use std::ops::Bound::{Excluded, Unbounded};
        let range = match after {
            Some(a) => self.people.range::<str, _>((Excluded(a), Unbounded)),
            None => self.people.range::<str, _>(..),
        };
        Ok(range.take(limit as usize).map(|(k, _)| k.clone()).collect())
    }

    fn find_direct_reports(&mut self, manager_id: &str) -> Result<Vec<StoredPerson>, StorageError> {
        Ok(self
            .people
            .values()
            .filter(|p| p.person.manager_id.as_deref() == Some(manager_id))
            .cloned()
            .collect())
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StorageError> {
        if let Some(e) = &self.fail_commit {
            return Err(e.clone());
        }
        for c in &batch.changes {
            match c {
                Change::UpsertPerson(u) => {
                    if let Some(previous) = &u.previous_object_id {
                        self.people.remove(previous);
                        self.keys.remove(previous);
                    }
                    let id = &u.stored.person.object_id;
                    self.keys.insert(id.clone(), MatchKeys::carried(u));
                    self.people.insert(id.clone(), u.stored.clone());
                }
                Change::DeletePerson(id) => {
                    self.people.remove(id);
                    self.keys.remove(id);
                    self.mailboxes.remove(id);
                    self.usage.retain(|(person, _, _), _| person != id);
                    for members in self.members.values_mut() {
                        members.remove(id);
                    }
                }
                Change::UpsertGroup(g) => {
                    self.groups.insert(g.object_id.clone(), g.clone());
                }
                Change::DeleteGroup(id) => {
                    self.groups.remove(id);
                    self.members.remove(id);
                }
                Change::GroupMembers(m) => {
                    let set = self.members.entry(m.group_id.clone()).or_default();
                    for a in &m.added {
                        set.insert(a.clone());
                    }
                    for r in &m.removed {
                        set.remove(r);
                    }
                }
                Change::UpsertSubscription(sub) => {
                    self.subscriptions.insert(sub.sku_id.clone(), sub.clone());
                }
                Change::UpsertOrganization(o) => self.organization = Some(o.clone()),
                Change::UpsertDomain(d) => {
                    self.domains.insert(d.name.clone(), d.clone());
                }
                Change::UpsertMailbox(m) => {
                    self.mailboxes.insert(m.object_id.clone(), m.clone());
                }
                Change::UpsertUsage(u) => {
                    self.usage.insert(
                        (u.object_id.clone(), u.workload.clone(), u.period_days),
                        u.clone(),
                    );
                }
                Change::ReplaceReport(ReportScope::Mailboxes) => self.mailboxes.clear(),
                Change::ReplaceReport(ReportScope::Usage(scope)) => {
                    self.usage.retain(|(_, workload, period), _| {
                        *workload != scope.workload || *period != scope.period_days
                    })
                }
            }
        }
        for cp in &batch.checkpoints {
            match &cp.value {
                Some(v) => self.checkpoints.insert(cp.key.clone(), v.clone()),
                None => self.checkpoints.remove(&cp.key),
            };
        }
        self.commits.push(batch.clone());
        Ok(())
    }

    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        Ok(self.organizations.clone())
    }

    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError> {
        let org = PlatformOrganization {
            id: format!("org-{}", self.organizations.len() + 1),
            name: name.to_owned(),
        };
        self.organizations.push(org.clone());
        Ok(org)
    }

    fn get_decision(&mut self, key: &str) -> Result<Option<MatchDecision>, StorageError> {
        Ok(self.decisions.get(key).cloned())
    }

    fn put_decision(&mut self, decision: &MatchDecision) -> Result<(), StorageError> {
        self.decisions
            .insert(decision.tenant_key.clone(), decision.clone());
        Ok(())
    }
}

/// All fakes together.
#[derive(Default)]
pub struct World {
    pub http: FakeHttp,
    pub secrets: FakeSecrets,
    pub credentials: FakeCredentials,
    pub store: FakeStore,
    pub log: FakeLog,
    pub clock: FakeClock,
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn env(&mut self) -> Env<'_> {
        Env {
            http: &mut self.http,
            secrets: &mut self.secrets,
            credentials: &mut self.credentials,
            store: &mut self.store,
            log: &mut self.log,
            clock: &mut self.clock,
        }
    }
}

pub fn tenant() -> Tenant {
    Tenant {
        key: "contoso".into(),
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        cloud: Cloud::Global,
        endpoints: Endpoints {
            login: "https://login.test".into(),
            graph: "https://graph.test".into(),
        },
        credential: CredentialKind::ClientSecret,
    }
}

pub fn request() -> SyncRequest {
    SyncRequest {
        tenant: tenant(),
        options: SyncOptions {
            mode: SyncMode::Full,
            features: Features::USERS,
            filter: AccountFilter {
                domains: vec![],
                licensed_only: false,
                enabled_only: false,
                include_guests: false,
                attributes: vec![],
            },
            match_key: MatchKey::Email,
            removal: RemovalPolicy::Keep,
            removal_guard: RemovalGuard {
                // Any share: the fixtures are small tenants (one removal of five is 20 %);
                // the guard's own tests set their limits.
                max_percent: 100,
                max_count: 500,
                allow: false,
            },
            field_map: vec![],
            usage_periods: vec![],
            dry_run: false,
        },
    }
}

/// The credentials of the test tenant (graph.test, login.test).
pub fn credentials() -> crate::graph::token::Credentials {
    crate::graph::token::Credentials {
        login: "https://login.test".into(),
        graph: "https://graph.test".into(),
        cloud: crate::types::Cloud::Global,
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        proof: crate::graph::token::Proof::Secret("the-client-secret".into()),
    }
}

/// The `users.filter` checkpoint a run with this filter saves (no group data).
pub fn filter_checkpoint(filter: &AccountFilter) -> String {
    crate::filter::Filter::compile(filter, crate::filter::FilterData::default())
        .unwrap()
        .fingerprint(filter)
}

/// An unsigned JWT with these roles.
pub fn fake_jwt(roles: &[&str]) -> String {
    let payload = serde_json::json!({"aud": "https://graph.test", "roles": roles}).to_string();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        base64url_encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        base64url_encode(payload.as_bytes())
    )
}

pub fn json_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

pub fn token_response(token: &str, expires_in: u64) -> HttpResponse {
    json_response(
        200,
        &serde_json::json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        })
        .to_string(),
    )
}

/// The GUID of test user `n`.
pub fn user_id(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

/// Graph's JSON for test user `n` (deterministic fields).
pub fn user_json(n: u32) -> serde_json::Value {
    let licences: Vec<_> = if n.is_multiple_of(4) {
        vec![]
    } else {
        vec![serde_json::json!({"disabledPlans": [], "skuId": format!("sku-{}", n % 3)})]
    };
    serde_json::json!({
        "id": user_id(n),
        "userPrincipalName": format!("user{n}@contoso.com"),
        "mail": format!("user{n}@contoso.com"),
        "givenName": format!("Given{n}"),
        "surname": format!("Surname{n}"),
        "displayName": format!("Given{n} Surname{n}"),
        "department": format!("Dept {}", n % 5),
        "jobTitle": null,
        "companyName": "Contoso",
        "country": "United States",
        "usageLocation": "US",
        "officeLocation": null,
        "accountEnabled": !n.is_multiple_of(7),
        "userType": "Member",
        "assignedLicenses": licences,
        "createdDateTime": "2024-01-01T00:00:00Z",
    })
}

/// The delta link the last page of [`page_body`] carries.
pub const DEFAULT_DELTA_LINK: &str =
    "https://graph.test/v1.0/users/delta?$deltatoken=DT-default-5f3a9c";

/// A page of users as Graph's delta query sends it: with a next link, or (the last page
/// of a round) with [`DEFAULT_DELTA_LINK`].
pub fn page_body(users: &[serde_json::Value], next: Option<&str>) -> String {
    delta_body(users, next, next.is_none().then_some(DEFAULT_DELTA_LINK))
}

/// A delta page with exactly these links.
pub fn delta_body(
    entries: &[serde_json::Value],
    next: Option<&str>,
    delta: Option<&str>,
) -> String {
    let mut v = serde_json::json!({
        "@odata.context": "https://graph.test/v1.0/$metadata#users",
        "value": entries,
    });
    if let Some(n) = next {
        v["@odata.nextLink"] = serde_json::Value::String(n.into());
    }
    if let Some(d) = delta {
        v["@odata.deltaLink"] = serde_json::Value::String(d.into());
    }
    v.to_string()
}

/// What the initial delta request of a round starts with.
pub const DELTA_FIRST: &str = "GET https://graph.test/v1.0/users/delta?$select=";

/// The next link to page `page` (2, 3, ...) of the round named `round`.
pub fn delta_next(round: &str, page: usize) -> String {
    format!("https://graph.test/v1.0/users/delta?$skiptoken=ST-{round}-{page}")
}

/// The delta link a round named `round` ends with.
pub fn delta_link(round: &str) -> String {
    format!("https://graph.test/v1.0/users/delta?$deltatoken=DT-{round}-5f3a9c")
}

/// A removed user, as a delta page lists it (`reason` "changed" or "deleted").
pub fn removed_json(n: u32, reason: &str) -> serde_json::Value {
    serde_json::json!({"id": user_id(n), "@removed": {"reason": reason}})
}

/// Scripts one delta round: `pages` of entries, the first requested with `first` (a
/// request prefix such as [`DELTA_FIRST`] or "GET " + a delta link), linked by the next
/// links of `round`, the last carrying `delta_link(round)`.
pub fn script_round(
    http: &mut FakeHttp,
    first: &str,
    round: &str,
    pages: &[Vec<serde_json::Value>],
) {
    for (i, entries) in pages.iter().enumerate() {
        let expect = if i == 0 {
            first.to_owned()
        } else {
            format!("GET {}", delta_next(round, i + 1))
        };
        let last = i + 1 == pages.len();
        let next = (!last).then(|| delta_next(round, i + 2));
        let delta = last.then(|| delta_link(round));
        http.push_ok(
            &expect,
            json_response(200, &delta_body(entries, next.as_deref(), delta.as_deref())),
        );
    }
}

/// Test user `n` as the engine maps it.
pub fn person(n: u32) -> Person {
    let body = page_body(&[user_json(n)], None);
    match crate::sources::users::parse_page(body.as_bytes(), "test") {
        Ok(mut p) => match p.entries.remove(0) {
            crate::sources::users::Entry::User(u) => u.into_person(),
            other => panic!("{other:?}"),
        },
        Err(e) => panic!("{e:?}"),
    }
}
