//! Usage reports: Graph's redirect followed without credentials, the CSV read by column
//! name (BOM, quotes, reordered columns, empty values), rows joined to people by user
//! principal name, concealed names warned about and never joined, lagging reports,
//! unavailable reports, bad CSV, and chunked joins.

use super::features::{ALL_ROLES, sign_in_with, with_features};
use super::*;
use crate::platform::HttpResponse;

const DOWNLOAD_HOST: &str = "https://reports.download.test";

fn download_url(function: &str, period: u16) -> String {
    format!("{DOWNLOAD_HOST}/data/download/TOKENPATH-{function}-{period}?sig=SIG{period}")
}

fn report_request(function: &str, period: u16) -> String {
    format!("GET https://graph.test/v1.0/reports/{function}(period='D{period}')")
}

fn csv_response(body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// Scripts Graph's 302 for a report and the download it points to.
fn script_report(w: &mut World, function: &str, period: u16, csv: &str) {
    let mut redirect = json_response(302, "");
    redirect.headers = vec![
        ("Content-Type".into(), "text/plain".into()),
        ("Location".into(), download_url(function, period)),
    ];
    w.http.push_ok(&report_request(function, period), redirect);
    w.http.push_ok(
        &format!("GET {}", download_url(function, period)),
        csv_response(csv),
    );
}

fn store_people(w: &mut World, ns: &[u32]) {
    for &n in ns {
        let p = person(n);
        w.store.put(StoredPerson {
            fingerprint: merge::fingerprint(&p),
            person: p,
            status: PersonStatus::Active,
        });
    }
}

fn reasons(d: &DataSetReport) -> Vec<(&str, u64)> {
    d.filtered_out
        .iter()
        .map(|r| (r.reason.as_str(), r.count))
        .collect()
}

fn data_set(r: &SyncReport, d: DataSet) -> &DataSetReport {
    r.data_sets.iter().find(|x| x.data_set == d).unwrap()
}

fn codes(r: &SyncReport) -> Vec<&str> {
    r.warnings.iter().map(|w| w.code.as_str()).collect()
}

fn authorization(r: &crate::platform::HttpRequest) -> Option<&str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
}

// The documented header of getMailboxUsageDetail, with the columns reordered, an extra one,
// a BOM, CRLF line ends, quoted fields and empty values.
const MAILBOX_CSV: &str = "\u{feff}User Principal Name,Display Name,Storage Used (Byte),Report Refresh Date,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Has Archive,Report Period,Something New\r\n\
USER1@Contoso.com,\"Given1, Surname1 \"\"G1\"\"\",1048576,2024-04-30,False,,2020-01-01,2024-04-29,120,2000000,3000000,4000000,4,2048,False,7,x\r\n\
user2@contoso.com,Given2,3500000,2024-04-30,False,,,,,2000000,3000000,4000000,,,False,7,\r\n\
stranger@fabrikam.com,Stranger,5,2024-04-30,False,,,,1,,,,,,,7,\r\n\
user3@contoso.com,Gone,5,2024-04-30,True,2024-04-01,,,1,,,,,,,7,\r\n";

#[test]
fn the_mailbox_report_is_downloaded_without_the_token_and_joined_by_upn() {
    let mut w = World::new();
    store_people(&mut w, &[1, 2, 3]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    script_report(&mut w, "getMailboxUsageDetail", 7, MAILBOX_CSV);
    let report = run(&mut w.env(), &with_features(Features::MAILBOXES)).unwrap();
    w.http.assert_done();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // Graph gets the token; the download host does not, and gets the Location as it is.
    let graph = &w.http.sent[1];
    assert!(authorization(graph).is_some_and(|a| a.starts_with("Bearer ")));
    let download = &w.http.sent[2];
    assert_eq!(download.url, download_url("getMailboxUsageDetail", 7));
    assert_eq!(authorization(download), None, "{:?}", download.headers);

    let one = &w.store.mailboxes[&user_id(1)];
    assert_eq!(
        *one,
        crate::types::Mailbox {
            object_id: user_id(1),
            storage_used_bytes: 1_048_576,
            item_count: 120,
            quota_status: "under-limit".into(),
            last_activity: Some("2024-04-29".into()),
            report_refreshed: "2024-04-30".into(),
        }
    );
    let two = &w.store.mailboxes[&user_id(2)];
    assert_eq!(two.quota_status, "send-prohibited");
    assert_eq!((two.item_count, two.last_activity.as_deref()), (0, None));
    assert_eq!(
        w.store.mailboxes.len(),
        2,
        "the stranger and the deleted user join nobody"
    );
    let m = data_set(&report, DataSet::Mailboxes);
    assert_eq!((m.pages, m.read, m.written), (1, 4, 2));
    assert_eq!(reasons(m), vec![("deleted", 1), ("unmatched", 1)]);
    // One lookup by normalised UPN for the chunk, one batch per chunk, then the report.
    assert_eq!(w.store.find_sizes, vec![3], "user1, user2, the stranger");
    assert_eq!(w.store.commits.len(), 2);
    assert!(w.store.commits[1].run.is_some());
}

#[test]
fn the_mailbox_report_uses_the_shortest_requested_period() {
    let mut w = World::new();
    store_people(&mut w, &[1]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    script_report(&mut w, "getMailboxUsageDetail", 30, MAILBOX_CSV);
    let mut req = with_features(Features::MAILBOXES);
    req.options.usage_periods = vec![90, 30, 90];
    run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
}

/// A minimal CSV of one usage report for user 1 and user 2 (with the documented columns
/// of the workload that the test looks at).
fn usage_csv(function: &str, refreshed: &str) -> String {
    let (cols, v1, v2) = match function {
        "getEmailActivityUserDetail" => (
            "Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count",
            "12,30,,1,0",
            "0,0,0,0,0",
        ),
        "getTeamsUserActivityUserDetail" => (
            "Team Chat Message Count,Private Chat Message Count,Call Count,Meeting Count,Audio Duration,Audio Duration In Seconds,Has Other Action,Is Licensed",
            "5,7,1,2,PT1M,60,No,Yes",
            ",,,,,,No,Yes",
        ),
        "getM365AppUserDetail" => (
            "Last Activation Date,Windows,Mac,Mobile,Web,Outlook (Windows),Teams (Web)",
            "2024-01-01,Yes,No,No,Yes,Yes,No",
            ",No,No,No,No,No,No",
        ),
        _ => ("Viewed Or Edited File Count", "3", ""),
    };
    format!(
        "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,{cols},Report Period\n\
         {refreshed},user1@contoso.com,False,,2024-04-18,{v1},7\n\
         {refreshed},user2@contoso.com,False,,,{v2},7\n"
    )
}

#[test]
fn usage_reports_for_every_period_and_workload_with_lag_and_a_retired_report() {
    let mut w = World::new();
    store_people(&mut w, &[1, 2]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    for period in [7, 30] {
        for spec in crate::sources::reports::USAGE {
            let f = spec.function;
            if f == "getSkypeForBusinessActivityUserDetail" {
                if period == 7 {
                    w.http.push_ok(
                        &report_request(f, period),
                        json_response(
                            404,
                            r#"{"error":{"code":"UnknownError","message":"The report is not available."}}"#,
                        ),
                    );
                }
                // Not asked again for the next period.
                continue;
            }
            let csv = usage_csv(f, "2024-04-20");
            if f == "getM365AppUserDetail" {
                // Also serves JSON: asked for CSV.
                let mut redirect = json_response(302, "");
                redirect.headers = vec![("Location".into(), download_url(f, period))];
                w.http.push_ok(
                    &format!("{}?$format=text/csv", report_request(f, period)),
                    redirect,
                );
                w.http.push_ok(
                    &format!("GET {}", download_url(f, period)),
                    csv_response(&csv),
                );
            } else {
                script_report(&mut w, f, period, &csv);
            }
        }
    }
    let mut req = with_features(Features::USAGE_REPORTS);
    req.options.usage_periods = vec![30, 7];
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(codes(&report), vec!["report-unavailable", "reports-lag"]);
    assert!(
        report.warnings[0]
            .message
            .contains("getSkypeForBusinessActivityUserDetail"),
        "{}",
        report.warnings[0].message
    );
    let lag = &report.warnings[1].message;
    assert!(
        lag.contains("usage reports lag by days; this data is as of 2024-04-20")
            || lag.contains("Usage reports lag by days; this data is as of 2024-04-20"),
        "{lag}"
    );
    assert!(lag.contains("11 days"), "{lag}");

    let usage = |n: u32, workload: &str, period: u16| {
        w.store.usage[&(user_id(n), workload.to_owned(), period)].clone()
    };
    let email = usage(1, "exchange", 7);
    assert_eq!(
        email.counts,
        vec![
            ("send-count".to_owned(), 12),
            ("receive-count".to_owned(), 30),
            ("meeting-created-count".to_owned(), 1),
            ("meeting-interacted-count".to_owned(), 0)
        ]
    );
    assert_eq!(email.last_activity.as_deref(), Some("2024-04-18"));
    assert_eq!(email.report_refreshed, "2024-04-20");
    let teams = usage(1, "teams", 30);
    assert_eq!(
        teams.counts,
        vec![
            ("team-chat-message-count".to_owned(), 5),
            ("private-chat-message-count".to_owned(), 7),
            ("call-count".to_owned(), 1),
            ("meeting-count".to_owned(), 2),
            ("audio-duration-in-seconds".to_owned(), 60)
        ],
        "durations as text, flags and dates are not counts"
    );
    assert!(usage(2, "teams", 30).counts.is_empty());
    assert_eq!(usage(2, "teams", 30).last_activity, None);
    let apps = usage(1, "m365-apps", 7);
    assert_eq!(
        apps.counts,
        vec![
            ("windows".to_owned(), 1),
            ("mac".to_owned(), 0),
            ("mobile".to_owned(), 0),
            ("web".to_owned(), 1),
            ("outlook-windows".to_owned(), 1),
            ("teams-web".to_owned(), 0)
        ]
    );
    assert_eq!(
        usage(1, "onedrive", 30).counts,
        vec![("viewed-or-edited-file-count".to_owned(), 3)]
    );
    assert_eq!(usage(1, "sharepoint", 7).counts.len(), 1);
    assert!(
        usage(1, "yammer", 7).counts.is_empty(),
        "Yammer has no such column: a documented column that is absent is left out"
    );
    // 6 workloads × 2 periods × 2 people.
    assert_eq!(w.store.usage.len(), 24);
    let u = data_set(&report, DataSet::Usage);
    assert_eq!((u.pages, u.read, u.written), (12, 24, 24));
    // Every download went without the token.
    for r in w
        .http
        .sent
        .iter()
        .filter(|r| r.url.starts_with(DOWNLOAD_HOST))
    {
        assert_eq!(authorization(r), None);
    }
}

#[test]
fn concealed_names_are_never_joined_and_warned_about_once() {
    let mut w = World::new();
    store_people(&mut w, &[1]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    let concealed = "Report Refresh Date,User Principal Name,Display Name,Last Activity Date,Item Count,Storage Used (Byte)\n\
        2024-04-30,FE7CC8C15246EDCCA289C9A4022762F7,4A1B2C3D4E5F60718293A4B5C6D7E8F9,2024-04-29,10,100\n\
        2024-04-30,0BAAAE0FB0B34645867D742D8FB669A2,0BAAAE0FB0B34645867D742D8FB669A2,,1,1\n\
        2024-04-30,6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0,x,,1,1\n\
        2024-04-30,user1@contoso.com,Given1,,1,1\n";
    script_report(&mut w, "getMailboxUsageDetail", 7, concealed);
    let email = "Report Refresh Date,User Principal Name,Send Count\n\
        2024-04-30,AB7CC8C15246EDCCA289C9A4022762F7,1\n\
        2024-04-30,CD7CC8C15246EDCCA289C9A4022762F7,2\n";
    script_report(&mut w, "getEmailActivityUserDetail", 7, email);
    // A mostly readable report: a lone pseudonym is just unmatched.
    let teams = "Report Refresh Date,User Principal Name,Call Count\n\
        2024-04-30,user1@contoso.com,1\n\
        2024-04-30,EF7CC8C15246EDCCA289C9A4022762F7,2\n\
        2024-04-30,nobody@contoso.com,2\n";
    script_report(&mut w, "getTeamsUserActivityUserDetail", 7, teams);
    for spec in &crate::sources::reports::USAGE[2..] {
        let header = "Report Refresh Date,User Principal Name\n";
        if spec.format_csv {
            let mut redirect = json_response(302, "");
            redirect.headers = vec![("Location".into(), download_url(spec.function, 7))];
            w.http.push_ok(
                &format!("{}?$format=text/csv", report_request(spec.function, 7)),
                redirect,
            );
            w.http.push_ok(
                &format!("GET {}", download_url(spec.function, 7)),
                csv_response(header),
            );
        } else {
            script_report(&mut w, spec.function, 7, header);
        }
    }
    let req = with_features(Features::MAILBOXES | Features::USAGE_REPORTS);
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(codes(&report), vec!["reports-concealed"]);
    let m = &report.warnings[0].message;
    assert!(
        m.contains("Display concealed user, group, and site names in all reports"),
        "{m}"
    );
    assert!(
        m.contains("Settings > Org settings > Services > Reports"),
        "{m}"
    );
    assert!(m.contains("5 row(s)"), "{m}");
    assert!(
        m.contains("getMailboxUsageDetail(period='D7')")
            && m.contains("getEmailActivityUserDetail(period='D7')")
            && !m.contains("getTeams"),
        "{m}"
    );
    // Only user1's rows joined anyone; pseudonyms were never looked up.
    assert_eq!(w.store.mailboxes.len(), 1);
    assert!(w.store.mailboxes.contains_key(&user_id(1)));
    assert!(w.store.usage.keys().all(|(id, _, _)| *id == user_id(1)));
    assert_eq!(
        w.store.find_sizes,
        vec![1, 1],
        "mailbox: user1; teams: nobody (user1 was joined earlier in the run)"
    );
    let mb = data_set(&report, DataSet::Mailboxes);
    assert_eq!(reasons(mb), vec![("concealed", 3)]);
    let u = data_set(&report, DataSet::Usage);
    assert_eq!(reasons(u), vec![("concealed", 2), ("unmatched", 2)]);
}

#[test]
fn a_report_without_a_required_column_or_with_a_bad_number_is_a_bad_response() {
    for (csv, expect) in [
        (
            "Report Refresh Date,Display Name,Storage Used (Byte)\n2024-04-30,x,1\n",
            "it has no \"User Principal Name\" column",
        ),
        (
            "User Principal Name,Storage Used (Byte)\nuser1@contoso.com,1\n",
            "it has no \"Report Refresh Date\" column",
        ),
        (
            "Report Refresh Date,User Principal Name,Storage Used (Byte)\n2024-04-30,user1@contoso.com,1\n2024-04-30,user2@contoso.com,12 GB\n",
            "row 2, column \"Storage Used (Byte)\": \"12 GB\" is not a whole number",
        ),
    ] {
        let mut w = World::new();
        store_people(&mut w, &[1, 2]);
        sign_in_with(&mut w, ALL_ROLES);
        script_report(&mut w, "getMailboxUsageDetail", 7, csv);
        let Err(SyncError::BadResponse(f)) = run(&mut w.env(), &with_features(Features::MAILBOXES))
        else {
            panic!("{csv}")
        };
        assert_eq!(
            f.url,
            "https://graph.test/v1.0/reports/getMailboxUsageDetail(period='D7')"
        );
        assert!(f.message.contains(expect), "{}", f.message);
        assert!(
            !f.message.contains("TOKENPATH") && !f.message.contains("SIG7"),
            "{}",
            f.message
        );
        assert!(w.store.commits.iter().all(|b| b.run.is_none()));
    }
}

#[test]
fn a_large_report_is_joined_and_committed_in_chunks_of_999_rows() {
    let mut w = World::new();
    store_people(&mut w, &[1, 2]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    let mut csv =
        String::from("Report Refresh Date,User Principal Name,Item Count,Storage Used (Byte)\n");
    for i in 0..2500 {
        let upn = if i == 0 {
            "user1@contoso.com".to_owned()
        } else if i == 2499 {
            "user2@contoso.com".to_owned()
        } else {
            format!("someone{i}@contoso.com")
        };
        csv.push_str(&format!("2024-04-30,{upn},{i},{i}\n"));
    }
    script_report(&mut w, "getMailboxUsageDetail", 7, &csv);
    let report = run(&mut w.env(), &with_features(Features::MAILBOXES)).unwrap();
    assert_eq!(w.store.find_sizes, vec![999, 999, 502]);
    assert!(w.store.find_sizes.iter().all(|&n| n <= 999));
    assert_eq!(w.store.mailboxes[&user_id(2)].item_count, 2499);
    let m = data_set(&report, DataSet::Mailboxes);
    assert_eq!((m.read, m.written), (2500, 2));
    assert_eq!(reasons(m), vec![("unmatched", 2498)]);
    // The replacement with its two rows (written once the whole report is joined), then
    // the run's report.
    let sizes: Vec<_> = w.store.commits.iter().map(|b| b.changes.len()).collect();
    assert_eq!(sizes, vec![3, 0]);
}

#[test]
fn a_report_served_directly_or_redirected_again_is_read_too() {
    let mut w = World::new();
    store_people(&mut w, &[1]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    let csv = "Report Refresh Date,User Principal Name,Storage Used (Byte)\n2024-04-30,user1@contoso.com,7\n";
    // Graph's redirect, then the download host's own redirect to a storage host.
    let mut redirect = json_response(302, "");
    redirect.headers = vec![("Location".into(), download_url("getMailboxUsageDetail", 7))];
    w.http
        .push_ok(&report_request("getMailboxUsageDetail", 7), redirect);
    let mut again = json_response(307, "");
    again.headers = vec![(
        "Location".into(),
        "https://blob.storage.test/r.csv?sv=x".into(),
    )];
    w.http.push_ok(
        &format!("GET {}", download_url("getMailboxUsageDetail", 7)),
        again,
    );
    w.http.push_ok(
        "GET https://blob.storage.test/r.csv?sv=x",
        csv_response(csv),
    );
    run(&mut w.env(), &with_features(Features::MAILBOXES)).unwrap();
    w.http.assert_done();
    assert_eq!(w.store.mailboxes[&user_id(1)].storage_used_bytes, 7);
    assert!(w.http.sent[2..].iter().all(|r| authorization(r).is_none()));

    // A 200 with the report itself.
    let mut w = World::new();
    store_people(&mut w, &[1]);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    w.http.push_ok(
        &report_request("getMailboxUsageDetail", 7),
        csv_response(csv),
    );
    run(&mut w.env(), &with_features(Features::MAILBOXES)).unwrap();
    assert_eq!(w.store.mailboxes[&user_id(1)].storage_used_bytes, 7);

    // A redirect without a Location is a bad response.
    let mut w = World::new();
    sign_in_with(&mut w, &["Reports.Read.All"]);
    w.http.push_ok(
        &report_request("getMailboxUsageDetail", 7),
        json_response(302, ""),
    );
    let Err(SyncError::BadResponse(f)) = run(&mut w.env(), &with_features(Features::MAILBOXES))
    else {
        panic!()
    };
    assert!(f.message.contains("without a Location"), "{}", f.message);
}

#[test]
fn a_run_of_every_feature_reads_users_first_and_commits_its_report_last() {
    let mut w = World::new();
    sign_in_with(&mut w, ALL_ROLES);
    let mut one = user_json(1);
    one["manager@delta"] =
        serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": user_id(2)}]);
    script_round(
        &mut w.http,
        "GET https://graph.test/v1.0/users/delta?$select=",
        "r1",
        &[vec![one, user_json(2)]],
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/users?$select=id,signInActivity&$top=500",
        json_response(
            200,
            &serde_json::json!({"value": [{"id": user_id(1), "signInActivity": {"lastSignInDateTime": "2024-04-30T00:00:00Z"}}]})
                .to_string(),
        ),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/subscribedSkus",
        json_response(
            200,
            r#"{"value": [{"skuId": "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "skuPartNumber": "SPB", "consumedUnits": 2, "prepaidUnits": {"enabled": 5}}]}"#,
        ),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/organization",
        json_response(200, r#"{"value": [{"id": "t", "displayName": "Contoso", "verifiedDomains": [{"name": "contoso.com", "isDefault": true}]}]}"#),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/domains",
        json_response(
            200,
            r#"{"value": [{"id": "contoso.com", "isDefault": true, "isVerified": true}]}"#,
        ),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/groups/delta?$select=",
        json_response(
            200,
            &serde_json::json!({"@odata.deltaLink": "https://graph.test/v1.0/groups/delta?$deltatoken=G1",
                "value": [{"id": "g1", "displayName": "All", "groupTypes": ["Unified"], "mailEnabled": true,
                           "securityEnabled": false, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": user_id(1)}]}]})
                .to_string(),
        ),
    );
    let today = "2024-04-30";
    script_report(
        &mut w,
        "getMailboxUsageDetail",
        7,
        &format!(
            "Report Refresh Date,User Principal Name,Storage Used (Byte)\n{today},user1@contoso.com,10\n"
        ),
    );
    for spec in crate::sources::reports::USAGE {
        let csv = format!(
            "Report Refresh Date,User Principal Name,Last Activity Date\n{today},user2@contoso.com,{today}\n"
        );
        if spec.format_csv {
            let mut redirect = json_response(302, "");
            redirect.headers = vec![("Location".into(), download_url(spec.function, 7))];
            w.http.push_ok(
                &format!("{}?$format=text/csv", report_request(spec.function, 7)),
                redirect,
            );
            w.http.push_ok(
                &format!("GET {}", download_url(spec.function, 7)),
                csv_response(&csv),
            );
        } else {
            script_report(&mut w, spec.function, 7, &csv);
        }
    }
    let mut req = with_features(Features::all());
    req.options.usage_periods = vec![7];
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let order: Vec<DataSet> = report.data_sets.iter().map(|d| d.data_set).collect();
    assert_eq!(
        order,
        vec![
            DataSet::Users,
            DataSet::Subscriptions,
            DataSet::Organization,
            DataSet::Domains,
            DataSet::Groups,
            DataSet::GroupMembers,
            DataSet::Mailboxes,
            DataSet::Usage
        ]
    );
    let p1 = &w.store.people[&user_id(1)].person;
    assert_eq!(p1.manager_id, Some(user_id(2)));
    assert_eq!(p1.last_sign_in.as_deref(), Some("2024-04-30T00:00:00Z"));
    assert_eq!(
        w.store.subscriptions["cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46"].product_name,
        "Microsoft 365 Business Premium"
    );
    assert_eq!(w.store.groups["g1"].kind, "microsoft-365");
    assert_eq!(w.store.mailboxes.len(), 1);
    assert_eq!(w.store.usage.len(), 7);
    // Users were committed before anything read them; the report rides on the last batch.
    let users_final = w
        .store
        .commits
        .iter()
        .position(|b| b.checkpoints.iter().any(|c| c.key == USERS_DELTA_LINK))
        .unwrap();
    assert_eq!(users_final, 0);
    let last = w.store.commits.last().unwrap();
    assert_eq!(last.run.as_ref(), Some(&report));
    assert!(
        w.store.commits[..w.store.commits.len() - 1]
            .iter()
            .all(|b| b.run.is_none())
    );
    assert_eq!(report.mode, SyncMode::Full);
}
