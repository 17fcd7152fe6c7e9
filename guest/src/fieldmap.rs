//! The field map: which Graph user property feeds which platform field. It names the
//! fields of an update ("job-title changed"), so a platform applies exactly what changed
//! under its own names. The default map covers what the seed platforms import (first and
//! last name, email, department, job title, country, office, manager, hire date); a
//! tenant's overrides rename a field, add one, or (empty platform field) leave one out.

use crate::types::{FieldMapping, Person, SyncError};

/// The Graph properties a person is read from, with the default platform field of those
/// the default map includes.
const PROPERTIES: [(&str, Option<&str>); 20] = [
    ("givenName", Some("first-name")),
    ("surname", Some("last-name")),
    ("mail", Some("email")),
    ("department", Some("department")),
    ("jobTitle", Some("job-title")),
    ("country", Some("country")),
    ("officeLocation", Some("office")),
    ("manager", Some("manager")),
    ("employeeHireDate", Some("hire-date")),
    ("userPrincipalName", None),
    ("displayName", None),
    ("companyName", None),
    ("usageLocation", None),
    ("accountEnabled", None),
    ("userType", None),
    ("assignedLicenses", None),
    ("createdDateTime", None),
    ("proxyAddresses", None),
    ("signInActivity", None),
    ("id", None),
];

/// A resolved field map: for each Graph property (in [`PROPERTIES`] order), its platform
/// field, or `None` when the map leaves it out.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMap {
    fields: Vec<Option<String>>,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            fields: PROPERTIES
                .iter()
                .map(|(_, f)| f.map(str::to_owned))
                .collect(),
        }
    }
}

impl FieldMap {
    /// The default map with `overrides` applied. Graph property names are matched
    /// case-insensitively; an unknown one is an `invalid-request` naming it.
    pub fn resolve(overrides: &[FieldMapping]) -> Result<FieldMap, SyncError> {
        let mut map = FieldMap::default();
        for (i, o) in overrides.iter().enumerate() {
            let property = o.graph_property.trim();
            let Some(at) = PROPERTIES
                .iter()
                .position(|(p, _)| p.eq_ignore_ascii_case(property))
            else {
                return Err(SyncError::InvalidRequest(format!(
                    "options.field-map[{i}].graph-property: {property:?} is not a user \
                     property the engine reads; use one of {}",
                    PROPERTIES
                        .iter()
                        .map(|(p, _)| *p)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let field = o.platform_field.trim();
            map.fields[at] = (!field.is_empty()).then(|| field.to_owned());
        }
        let mut seen: Vec<&str> = Vec::new();
        for f in map.fields.iter().flatten() {
            if seen.contains(&f.as_str()) {
                return Err(SyncError::InvalidRequest(format!(
                    "options.field-map: platform field {f:?} is fed by two Graph properties"
                )));
            }
            seen.push(f);
        }
        Ok(map)
    }

    /// The mapped properties, in map order (what `engine.field-map` answers).
    pub fn mappings(&self) -> Vec<FieldMapping> {
        PROPERTIES
            .iter()
            .zip(&self.fields)
            .filter_map(|((p, _), f)| {
                f.as_ref().map(|f| FieldMapping {
                    graph_property: (*p).to_owned(),
                    platform_field: f.clone(),
                })
            })
            .collect()
    }

    /// The fields that differ between two states of a person, by platform field when
    /// mapped, else by Graph property; properties the map leaves out are not named.
    pub fn changed_fields(&self, old: &Person, new: &Person) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (property, _)) in PROPERTIES.iter().enumerate() {
            if !differs(property, old, new) {
                continue;
            }
            match &self.fields[i] {
                Some(f) => out.push(f.clone()),
                None if PROPERTIES[i].1.is_some() => {} // mapped by default, left out
                None => out.push((*property).to_owned()),
            }
        }
        out
    }
}

fn differs(property: &str, a: &Person, b: &Person) -> bool {
    match property {
        "givenName" => a.given_name != b.given_name,
        "surname" => a.surname != b.surname,
        "mail" => a.mail != b.mail,
        "department" => a.department != b.department,
        "jobTitle" => a.job_title != b.job_title,
        "country" => a.country != b.country,
        "officeLocation" => a.office_location != b.office_location,
        "manager" => a.manager_id != b.manager_id,
        "employeeHireDate" => a.hire_date != b.hire_date,
        "userPrincipalName" => a.user_principal_name != b.user_principal_name,
        "displayName" => a.display_name != b.display_name,
        "companyName" => a.company_name != b.company_name,
        "usageLocation" => a.usage_location != b.usage_location,
        "accountEnabled" => a.account_enabled != b.account_enabled,
        "userType" => a.user_type != b.user_type,
        "assignedLicenses" => a.licences != b.licences,
        "createdDateTime" => a.created_at != b.created_at,
        "proxyAddresses" => a.proxy_addresses != b.proxy_addresses,
        "signInActivity" => a.last_sign_in != b.last_sign_in,
        "id" => a.object_id != b.object_id,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::person;

    fn mapping(p: &str, f: &str) -> FieldMapping {
        FieldMapping {
            graph_property: p.into(),
            platform_field: f.into(),
        }
    }

    #[test]
    fn default_map_names_the_nine_default_fields() {
        let names: Vec<String> = FieldMap::default()
            .mappings()
            .into_iter()
            .map(|m| m.platform_field)
            .collect();
        assert_eq!(
            names,
            [
                "first-name",
                "last-name",
                "email",
                "department",
                "job-title",
                "country",
                "office",
                "manager",
                "hire-date"
            ]
        );
    }

    #[test]
    fn overrides_rename_add_and_leave_out() {
        let map = FieldMap::resolve(&[
            mapping("JOBTITLE", "title"),
            mapping("companyName", "company"),
            mapping("officeLocation", " "),
        ])
        .unwrap();
        let mut old = person(1);
        old.job_title = Some("Engineer".into());
        let mut new = old.clone();
        new.job_title = Some("Lead".into());
        new.company_name = Some("Another Company".into());
        new.office_location = Some("B2".into());
        new.display_name = Some("Changed".into());
        assert_eq!(
            map.changed_fields(&old, &new),
            ["title", "displayName", "company"]
        );
        assert!(map.mappings().iter().all(|m| m.platform_field != "office"));
    }

    #[test]
    fn unknown_properties_and_doubled_fields_are_named() {
        let e = FieldMap::resolve(&[mapping("jobtitel", "title")]).unwrap_err();
        assert!(
            matches!(&e, SyncError::InvalidRequest(m) if m.contains("field-map[0]") && m.contains("jobtitel")),
            "{e:?}"
        );
        let e = FieldMap::resolve(&[mapping("companyName", "department")]).unwrap_err();
        assert!(
            matches!(&e, SyncError::InvalidRequest(m) if m.contains("\"department\"")),
            "{e:?}"
        );
    }

    #[test]
    fn identical_people_have_no_changed_fields() {
        let p = person(3);
        assert!(FieldMap::default().changed_fields(&p, &p).is_empty());
    }
}
