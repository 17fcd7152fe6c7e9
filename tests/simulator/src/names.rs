//! Data tables for the tenant generator: company names, given names and
//! surnames per locale, countries (with their ISO 3166 codes, which Graph uses
//! for `usageLocation`), office cities, departments and job titles, external
//! (guest) mail domains, service accounts and licence SKUs.

/// Name pools, by locale. Several contain non-ASCII letters on purpose: real
/// directories do, and addresses must be ASCII-folded from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    De,
    Fr,
    Es,
    Pl,
    Nordic,
    Nl,
    In,
    Jp,
}

#[rustfmt::skip]
pub fn given_names(locale: Locale) -> &'static [&'static str] {
    match locale {
        Locale::En => &[
            "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
            "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
            "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa",
            "Matthew", "Betty", "Anthony", "Margaret", "Mark", "Sandra", "Donald", "Ashley",
            "Steven", "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle",
            "Kenneth", "Dorothy", "Kevin", "Carol", "Brian", "Amanda", "George", "Melissa",
            "Oliver", "Amelia", "Harry", "Isla", "Jack", "Ava", "Noah", "Sophie", "Liam",
            "Chloe", "Ethan", "Grace", "Zoë", "Renée", "Chloé", "Siobhán", "Seán", "Aoife",
        ],
        Locale::De => &[
            "Jürgen", "Björn", "Jörg", "Günther", "Sören", "Anna", "Lena", "Felix", "Lukas",
            "Maximilian", "Sophie", "Hannah", "Jonas", "Leon", "Katharina", "Stefan", "Andreas",
            "Sabine", "Claudia", "Markus", "Thomas", "Petra", "Uwe", "Jan", "Lea", "Mia",
            "Matthias", "Tobias", "Julia", "Anja", "Käthe", "Ralf", "Heike", "Dieter",
        ],
        Locale::Fr => &[
            "François", "Hélène", "Zoë", "Amélie", "Jérôme", "Céline", "Noël", "Léa", "Chloé",
            "Benoît", "Élodie", "Gaëlle", "Mathéo", "Inès", "Camille", "Louis", "Nicolas",
            "Julien", "Sophie", "Pierre", "Marie", "Antoine", "Manon", "Thomas", "Emma", "Hugo",
            "Lucas", "Clément", "Margaux", "Valérie",
        ],
        Locale::Es => &[
            "José", "María", "Álvaro", "Inés", "Raúl", "Sofía", "Javier", "Lucía", "Carlos",
            "Carmen", "Miguel", "Ana", "Jesús", "Elena", "Sergio", "Laura", "Andrés", "Marta",
            "Pablo", "Paula", "Jorge", "Cristina", "Adrián", "Lourdes", "Héctor", "Nuria",
            "Iván", "Begoña",
        ],
        Locale::Pl => &[
            "Łukasz", "Paweł", "Małgorzata", "Wojciech", "Agnieszka", "Michał", "Katarzyna",
            "Grzegorz", "Zofia", "Jędrzej", "Anna", "Piotr", "Tomasz", "Magdalena", "Krzysztof",
            "Joanna", "Marek", "Ewa", "Stanisław", "Bożena", "Jacek", "Urszula", "Kamil",
            "Marta",
        ],
        Locale::Nordic => &[
            "Søren", "Åsa", "Björn", "Mette", "Lars", "Ingrid", "Jørgen", "Sigrid", "Anders",
            "Märta", "Mads", "Freja", "Oskar", "Astrid", "Nils", "Karin", "Erik", "Maja",
            "Henrik", "Linnéa", "Ole", "Kirsten", "Magnus", "Solveig", "Bjørn", "Håkon", "Elin",
            "Johan",
        ],
        Locale::Nl => &[
            "Daan", "Sanne", "Bram", "Lotte", "Sem", "Fleur", "Jeroen", "Femke", "Ruben",
            "Anouk", "Thijs", "Eva", "Joost", "Marloes", "Pieter", "Inge", "Lars", "Noor",
            "Bas", "Esther", "Sjoerd", "Maaike",
        ],
        Locale::In => &[
            "Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Neha", "Arjun", "Kavya", "Rahul",
            "Pooja", "Siddharth", "Divya", "Aditya", "Sneha", "Karthik", "Lakshmi", "Vivek",
            "Meera", "Sanjay", "Deepa", "Rajesh", "Anjali",
        ],
        Locale::Jp => &[
            "Haruto", "Yui", "Sota", "Aoi", "Ren", "Hina", "Yuto", "Sakura", "Kenji", "Yuki",
            "Takumi", "Mei", "Daiki", "Rin", "Hiroshi", "Akiko", "Shōta", "Yūko",
        ],
    }
}

#[rustfmt::skip]
pub fn surnames(locale: Locale) -> &'static [&'static str] {
    match locale {
        Locale::En => &[
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
            "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas",
            "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris",
            "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
            "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
            "Carter", "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart",
            "Morris", "Murphy", "Cook", "Rogers", "O'Brien", "O'Connor", "Fitzgerald",
            "MacDonald", "Hughes", "Price", "Bennett", "Wood", "Barnes", "Ross", "Henderson",
            "Coleman", "Jenkins", "Perry", "Powell", "Long", "Patterson", "Flores", "Sullivan",
            "Russell",
        ],
        Locale::De => &[
            "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
            "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
            "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann",
            "Hartmann", "Lange", "Weiß", "Groß", "Köhler", "Jäger", "Vogel",
        ],
        Locale::Fr => &[
            "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
            "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garnier", "Girard",
            "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Chevalier",
            "Boyer", "Gauthier", "Mercier", "Lefèbvre", "Barbé", "Rivière", "Hébert",
        ],
        Locale::Es => &[
            "García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Martín", "Jiménez",
            "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso",
            "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez",
            "Serrano", "Blanco", "Núñez", "Castillo", "Ortega", "Rubio",
        ],
        Locale::Pl => &[
            "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
            "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur",
            "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski", "Nowakowski", "Pawłowski",
            "Michalski", "Król", "Wieczorek", "Jabłoński",
        ],
        Locale::Nordic => &[
            "Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen",
            "Sørensen", "Rasmussen", "Jørgensen", "Andersson", "Johansson", "Karlsson",
            "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson", "Lindqvist", "Bergström",
            "Østergaard", "Håkansson", "Lindström", "Ødegaard", "Dahl", "Berg", "Haugen",
            "Bakke", "Åberg", "Sjöberg",
        ],
        Locale::Nl => &[
            "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
            "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters",
            "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra",
            "van der Meer",
        ],
        Locale::In => &[
            "Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh", "Mehta", "Kumar",
            "Rao", "Joshi", "Desai", "Menon", "Agarwal", "Banerjee", "Chopra", "Kapoor",
            "Malhotra", "Pillai", "Verma", "Bhat", "Chatterjee",
        ],
        Locale::Jp => &[
            "Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
            "Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto",
            "Inoue", "Kimura", "Hayashi", "Ōno", "Kōno",
        ],
    }
}

/// A country a user can be in. `code` is the ISO 3166-1 alpha-2 code that
/// Graph uses for `usageLocation`
/// (microsoftgraph/microsoft-graph-docs-contrib: api-reference/v1.0/resources/user.md).
#[derive(Debug, Clone, Copy)]
pub struct Country {
    pub name: &'static str,
    pub code: &'static str,
    pub locale: Locale,
    pub cities: &'static [&'static str],
    /// Relative share of the workforce in a tenant based elsewhere.
    pub weight: u32,
    pub phone_prefix: &'static str,
    pub language: &'static str,
}

pub const COUNTRIES: &[Country] = &[
    Country {
        name: "United States",
        code: "US",
        locale: Locale::En,
        cities: &[
            "Seattle",
            "New York",
            "Chicago",
            "Austin",
            "San Francisco",
            "Atlanta",
            "Boston",
        ],
        weight: 34,
        phone_prefix: "+1",
        language: "en-US",
    },
    Country {
        name: "United Kingdom",
        code: "GB",
        locale: Locale::En,
        cities: &["London", "Manchester", "Edinburgh", "Bristol"],
        weight: 10,
        phone_prefix: "+44",
        language: "en-GB",
    },
    Country {
        name: "Canada",
        code: "CA",
        locale: Locale::En,
        cities: &["Toronto", "Vancouver", "Montréal"],
        weight: 4,
        phone_prefix: "+1",
        language: "en-CA",
    },
    Country {
        name: "Australia",
        code: "AU",
        locale: Locale::En,
        cities: &["Sydney", "Melbourne", "Brisbane"],
        weight: 3,
        phone_prefix: "+61",
        language: "en-AU",
    },
    Country {
        name: "Ireland",
        code: "IE",
        locale: Locale::En,
        cities: &["Dublin", "Cork"],
        weight: 2,
        phone_prefix: "+353",
        language: "en-IE",
    },
    Country {
        name: "Germany",
        code: "DE",
        locale: Locale::De,
        cities: &["München", "Berlin", "Hamburg", "Frankfurt am Main"],
        weight: 9,
        phone_prefix: "+49",
        language: "de-DE",
    },
    Country {
        name: "Switzerland",
        code: "CH",
        locale: Locale::De,
        cities: &["Zürich", "Basel", "Bern"],
        weight: 2,
        phone_prefix: "+41",
        language: "de-CH",
    },
    Country {
        name: "France",
        code: "FR",
        locale: Locale::Fr,
        cities: &["Paris", "Lyon", "Toulouse"],
        weight: 6,
        phone_prefix: "+33",
        language: "fr-FR",
    },
    Country {
        name: "Spain",
        code: "ES",
        locale: Locale::Es,
        cities: &["Madrid", "Barcelona", "Valencia"],
        weight: 4,
        phone_prefix: "+34",
        language: "es-ES",
    },
    Country {
        name: "Mexico",
        code: "MX",
        locale: Locale::Es,
        cities: &["Ciudad de México", "Guadalajara", "Monterrey"],
        weight: 2,
        phone_prefix: "+52",
        language: "es-MX",
    },
    Country {
        name: "Poland",
        code: "PL",
        locale: Locale::Pl,
        cities: &["Warszawa", "Kraków", "Wrocław"],
        weight: 4,
        phone_prefix: "+48",
        language: "pl-PL",
    },
    Country {
        name: "Denmark",
        code: "DK",
        locale: Locale::Nordic,
        cities: &["København", "Aarhus"],
        weight: 3,
        phone_prefix: "+45",
        language: "da-DK",
    },
    Country {
        name: "Sweden",
        code: "SE",
        locale: Locale::Nordic,
        cities: &["Stockholm", "Göteborg", "Malmö"],
        weight: 3,
        phone_prefix: "+46",
        language: "sv-SE",
    },
    Country {
        name: "Norway",
        code: "NO",
        locale: Locale::Nordic,
        cities: &["Oslo", "Bergen"],
        weight: 2,
        phone_prefix: "+47",
        language: "nb-NO",
    },
    Country {
        name: "Netherlands",
        code: "NL",
        locale: Locale::Nl,
        cities: &["Amsterdam", "Rotterdam", "Utrecht"],
        weight: 4,
        phone_prefix: "+31",
        language: "nl-NL",
    },
    Country {
        name: "India",
        code: "IN",
        locale: Locale::In,
        cities: &["Bengaluru", "Hyderabad", "Pune"],
        weight: 6,
        phone_prefix: "+91",
        language: "en-IN",
    },
    Country {
        name: "Japan",
        code: "JP",
        locale: Locale::Jp,
        cities: &["Tokyo", "Osaka"],
        weight: 2,
        phone_prefix: "+81",
        language: "ja-JP",
    },
];

/// Indexes into [`COUNTRIES`] a tenant can be headquartered in.
pub const HOME_COUNTRIES: &[usize] = &[0, 0, 0, 1, 1, 5, 7, 14, 11, 10, 8];

/// A department, its relative size and the job titles found in it.
#[derive(Debug, Clone, Copy)]
pub struct Department {
    pub name: &'static str,
    pub weight: u32,
    pub titles: &'static [&'static str],
}

pub const DEPARTMENTS: &[Department] = &[
    Department {
        name: "Engineering",
        weight: 20,
        titles: &[
            "Software Engineer",
            "Senior Software Engineer",
            "Principal Engineer",
            "Engineering Manager",
            "QA Engineer",
            "DevOps Engineer",
        ],
    },
    Department {
        name: "Sales",
        weight: 15,
        titles: &[
            "Account Executive",
            "Sales Manager",
            "Sales Representative",
            "Inside Sales Specialist",
            "Regional Sales Director",
        ],
    },
    Department {
        name: "Customer Support",
        weight: 12,
        titles: &[
            "Support Engineer",
            "Customer Success Manager",
            "Support Team Lead",
            "Customer Service Representative",
        ],
    },
    Department {
        name: "Operations",
        weight: 9,
        titles: &[
            "Operations Manager",
            "Logistics Coordinator",
            "Supply Chain Analyst",
            "Facilities Manager",
        ],
    },
    Department {
        name: "Marketing",
        weight: 8,
        titles: &[
            "Marketing Manager",
            "Content Strategist",
            "Digital Marketing Specialist",
            "Brand Manager",
            "Marketing Coordinator",
        ],
    },
    Department {
        name: "IT",
        weight: 7,
        titles: &[
            "Systems Administrator",
            "IT Support Specialist",
            "Network Engineer",
            "IT Manager",
            "Security Analyst",
        ],
    },
    Department {
        name: "Finance",
        weight: 7,
        titles: &[
            "Financial Analyst",
            "Accountant",
            "Controller",
            "Accounts Payable Specialist",
            "Finance Manager",
        ],
    },
    Department {
        name: "Research & Development",
        weight: 6,
        titles: &[
            "Research Scientist",
            "Product Designer",
            "UX Researcher",
            "Data Scientist",
        ],
    },
    Department {
        name: "Product Management",
        weight: 5,
        titles: &[
            "Product Manager",
            "Senior Product Manager",
            "Product Owner",
            "Program Manager",
        ],
    },
    Department {
        name: "Human Resources",
        weight: 5,
        titles: &[
            "HR Business Partner",
            "Recruiter",
            "HR Generalist",
            "Talent Acquisition Lead",
            "Payroll Specialist",
        ],
    },
    Department {
        name: "Legal",
        weight: 3,
        titles: &["Legal Counsel", "Paralegal", "Compliance Officer"],
    },
    Department {
        name: "Executive",
        weight: 1,
        titles: &[
            "Vice President",
            "Director",
            "Chief of Staff",
            "Executive Assistant",
        ],
    },
];

/// Fictitious company names Microsoft uses in its own documentation.
pub const COMPANIES: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Adventure Works",
    "Tailspin Toys",
    "Woodgrove Bank",
    "Litware",
    "Proseware",
    "Wingtip Toys",
    "Alpine Ski House",
    "Coho Winery",
    "Lamna Healthcare",
    "Relecloud",
    "Trey Research",
    "Wide World Importers",
    "Fourth Coffee",
    "Humongous Insurance",
    "Blue Yonder Airlines",
    "Lucerne Publishing",
    "Consolidated Messenger",
    "Southridge Video",
    "VanArsdel",
    "Margie's Travel",
    "Graphic Design Institute",
];

pub const COMPANY_SUFFIXES: &[&str] =
    &["Ltd", "Inc.", "Corporation", "Group", "LLC", "GmbH", "plc"];

/// Mail domains external (guest) users come from.
pub const GUEST_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
    "fabrikam.com",
    "northwindtraders.com",
    "adatum.com",
    "litwareinc.com",
    "tailspintoys.com",
    "woodgrovebank.com",
    "relecloud.com",
];

/// The consumer mail services among [`GUEST_DOMAINS`]; their users pick
/// addresses like `janedoe84`.
pub const CONSUMER_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
];

/// Service and resource accounts: (mail nickname stem, display name stem,
/// department). They have no mailbox, so `mail` is null.
pub const SERVICE_ACCOUNTS: &[(&str, &str, Option<&str>)] = &[
    ("svc-backup", "Backup Service", Some("IT")),
    ("svc-sharepoint", "SharePoint Service", Some("IT")),
    ("svc-scanner", "Scan to Email", None),
    ("svc-sql", "SQL Service", Some("IT")),
    ("svc-crm-sync", "CRM Sync", Some("Sales")),
    ("svc-monitoring", "Monitoring", Some("IT")),
    ("svc-print", "Print Service", None),
    ("svc-intune", "Intune Enrollment", Some("IT")),
    ("svc-ci", "Build Agent", Some("Engineering")),
    ("svc-hr-import", "HR Import", Some("Human Resources")),
    ("sync-agent", "Directory Sync Agent", Some("IT")),
    ("kiosk", "Lobby Kiosk", None),
    ("conf-room", "Conference Room", None),
];

/// A licence SKU. Ids and part numbers are Microsoft's, from "Product names and
/// service plan identifiers for licensing"
/// (https://learn.microsoft.com/en-us/entra/identity/users/licensing-service-plan-reference).
#[derive(Debug, Clone, Copy)]
pub struct SkuInfo {
    pub sku_id: &'static str,
    pub part_number: &'static str,
    /// Free / trial SKUs come with a large fixed allowance.
    pub free: bool,
    /// The product name as the usage reports' "Assigned Products" column
    /// spells it: upper case, e.g. "MICROSOFT POWER AUTOMATE FREE" (a Teams
    /// user activity row quoted in office365itpros.com, 2020-12-07
    /// "anonymize-microsoft-365-usage-reports").
    pub product: &'static str,
    /// The service plans the SKU includes (names from [`SERVICE_PLANS`]).
    pub plans: &'static [&'static str],
}

/// Service plans: (servicePlanName, servicePlanId, appliesTo). The Microsoft 365
/// E5 list is the one `Get-MgSubscribedSku … -ExpandProperty ServicePlans`
/// prints in MicrosoftDocs/microsoft-365-docs
/// (enterprise/assign-licenses-to-user-accounts-with-microsoft-365-powershell.md);
/// EXCHANGE_S_FOUNDATION ("Company") and the other ids are from the licensing
/// service plan reference above.
pub const SERVICE_PLANS: &[(&str, &str, &str)] = &[
    (
        "PROJECT_O365_P3",
        "b21a6b06-1988-436e-a07b-51ec6d9f52ad",
        "User",
    ),
    (
        "MICROSOFTENDPOINTDLP",
        "64bfac92-2b17-4482-b5e5-a0304429de3e",
        "User",
    ),
    (
        "MICROSOFTBOOKINGS",
        "199a5c09-e0ca-4e37-8f7c-b05d533e1ea2",
        "User",
    ),
    (
        "CUSTOMER_KEY",
        "6db1f1db-2b46-403f-be40-e39395f08dbb",
        "User",
    ),
    (
        "WHITEBOARD_PLAN3",
        "4a51bca5-1eff-43f5-878c-177680f191af",
        "User",
    ),
    (
        "FLOW_O365_P3",
        "07699545-9485-468e-95b6-2fca3738be01",
        "User",
    ),
    (
        "POWERAPPS_O365_P3",
        "9c0dab89-a30c-4117-86e7-97bda240acd2",
        "User",
    ),
    (
        "FORMS_PLAN_E5",
        "e212cbc7-0961-4c40-9825-01117710dcb1",
        "User",
    ),
    ("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929", "User"),
    (
        "WIN10_PRO_ENT_SUB",
        "21b439ba-a0ca-424f-a6cc-52f954a5b111",
        "User",
    ),
    (
        "AAD_PREMIUM_P2",
        "eec0eb4f-6444-4f95-aba0-50c24d67f998",
        "User",
    ),
    ("INTUNE_A", "c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "User"),
    (
        "YAMMER_ENTERPRISE",
        "7547a3fe-08ee-4ccb-b430-5077c5041653",
        "User",
    ),
    ("SWAY", "a23b959c-7ce8-4e57-9140-b90eb88a9e97", "User"),
    (
        "SHAREPOINTWAC",
        "e95bec33-7c88-4a70-8e19-b10bd9d0c014",
        "User",
    ),
    (
        "SHAREPOINTENTERPRISE",
        "5dbe027f-2339-4123-9542-606e4d348a72",
        "User",
    ),
    (
        "PROJECTWORKMANAGEMENT",
        "b737dad2-2f6c-4c65-90e3-ca563267e8b9",
        "User",
    ),
    (
        "OFFICESUBSCRIPTION",
        "43de0ff5-c92c-492b-9116-175376d08c38",
        "User",
    ),
    (
        "MCOSTANDARD",
        "0feaeb32-d00e-4d66-bd5a-43b5b83db82c",
        "User",
    ),
    (
        "LOCKBOX_ENTERPRISE",
        "9f431833-0334-42de-a7dc-70aa40db46db",
        "User",
    ),
    (
        "EXCHANGE_S_ENTERPRISE",
        "efb87545-963c-4e0d-99df-69c6916d9eb0",
        "User",
    ),
    (
        "EXCHANGE_S_STANDARD",
        "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
        "User",
    ),
    (
        "EXCHANGE_S_DESKLESS",
        "4a82b400-a79f-41a4-b4e2-e94f5787b113",
        "User",
    ),
    (
        "EXCHANGE_S_FOUNDATION",
        "113feb6c-3fe4-4440-bddc-54d774bf0318",
        "Company",
    ),
    (
        "SHAREPOINTSTANDARD",
        "c7699d2e-19aa-44de-8edf-1736da088ca1",
        "User",
    ),
    (
        "O365_BUSINESS",
        "094e7854-93fc-4d55-b2c0-3ab5369ebdc1",
        "User",
    ),
    (
        "AAD_PREMIUM",
        "41781fb2-bc02-4b7c-bd55-b576c07bb09d",
        "User",
    ),
    (
        "FLOW_O365_P2",
        "76846ad7-7776-4c40-a281-a386362dd1b9",
        "User",
    ),
    (
        "RMS_S_PREMIUM",
        "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3",
        "User",
    ),
    (
        "RMS_S_ENTERPRISE",
        "bea4c11e-220a-4e6d-8eb8-8ea15d019f90",
        "User",
    ),
    (
        "MFA_PREMIUM",
        "8a256a2b-b617-496d-b51b-e76466e88db0",
        "User",
    ),
    (
        "BI_AZURE_P2",
        "70d33638-9c74-4d01-bfd3-562de28bd4ba",
        "User",
    ),
    (
        "FLOW_P2_VIRAL",
        "50e68c76-46c6-4674-81f9-75456511b170",
        "User",
    ),
    (
        "DYN365_CDS_VIRAL",
        "17ab22cd-a0b3-4536-910a-cb6eb12696c0",
        "User",
    ),
];

/// A service plan's id and `appliesTo` by name.
pub fn service_plan(name: &str) -> Option<(&'static str, &'static str)> {
    SERVICE_PLANS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, id, applies)| (id, applies))
}

/// Microsoft 365 E5's plans (the documented list, see [`SERVICE_PLANS`]).
const E5_PLANS: &[&str] = &[
    "PROJECT_O365_P3",
    "MICROSOFTENDPOINTDLP",
    "MICROSOFTBOOKINGS",
    "CUSTOMER_KEY",
    "WHITEBOARD_PLAN3",
    "FLOW_O365_P3",
    "POWERAPPS_O365_P3",
    "FORMS_PLAN_E5",
    "TEAMS1",
    "WIN10_PRO_ENT_SUB",
    "AAD_PREMIUM_P2",
    "INTUNE_A",
    "YAMMER_ENTERPRISE",
    "SWAY",
    "SHAREPOINTWAC",
    "SHAREPOINTENTERPRISE",
    "PROJECTWORKMANAGEMENT",
    "OFFICESUBSCRIPTION",
    "MCOSTANDARD",
    "LOCKBOX_ENTERPRISE",
    "EXCHANGE_S_ENTERPRISE",
];

/// Office 365 E3.
pub const ENTERPRISEPACK: SkuInfo = SkuInfo {
    sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900",
    part_number: "ENTERPRISEPACK",
    free: false,
    product: "OFFICE 365 E3",
    plans: &[
        "EXCHANGE_S_ENTERPRISE",
        "TEAMS1",
        "SHAREPOINTENTERPRISE",
        "SHAREPOINTWAC",
        "OFFICESUBSCRIPTION",
        "MCOSTANDARD",
        "YAMMER_ENTERPRISE",
        "SWAY",
        "PROJECTWORKMANAGEMENT",
        "FLOW_O365_P2",
    ],
};
/// Microsoft 365 E3.
pub const SPE_E3: SkuInfo = SkuInfo {
    sku_id: "05e9a617-0261-4cee-bb44-138d3ef5d965",
    part_number: "SPE_E3",
    free: false,
    product: "MICROSOFT 365 E3",
    plans: &[
        "EXCHANGE_S_ENTERPRISE",
        "TEAMS1",
        "SHAREPOINTENTERPRISE",
        "SHAREPOINTWAC",
        "OFFICESUBSCRIPTION",
        "MCOSTANDARD",
        "YAMMER_ENTERPRISE",
        "SWAY",
        "PROJECTWORKMANAGEMENT",
        "FLOW_O365_P2",
        "AAD_PREMIUM",
        "INTUNE_A",
        "WIN10_PRO_ENT_SUB",
    ],
};
/// Microsoft 365 E5.
pub const SPE_E5: SkuInfo = SkuInfo {
    sku_id: "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
    part_number: "SPE_E5",
    free: false,
    product: "MICROSOFT 365 E5",
    plans: E5_PLANS,
};
/// Microsoft 365 Business Standard.
pub const O365_BUSINESS_PREMIUM: SkuInfo = SkuInfo {
    sku_id: "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
    part_number: "O365_BUSINESS_PREMIUM",
    free: false,
    product: "MICROSOFT 365 BUSINESS STANDARD",
    plans: &[
        "EXCHANGE_S_STANDARD",
        "TEAMS1",
        "SHAREPOINTSTANDARD",
        "SHAREPOINTWAC",
        "O365_BUSINESS",
        "MCOSTANDARD",
        "YAMMER_ENTERPRISE",
        "SWAY",
        "PROJECTWORKMANAGEMENT",
    ],
};
/// Enterprise Mobility + Security E3. (The brief's e97c048c-… id is
/// M365EDU_A5_FACULTY; efccb6f7-… is EMS.)
pub const EMS: SkuInfo = SkuInfo {
    sku_id: "efccb6f7-5641-4e0e-bd10-b4976e1bf68e",
    part_number: "EMS",
    free: false,
    product: "ENTERPRISE MOBILITY + SECURITY E3",
    plans: &[
        "AAD_PREMIUM",
        "INTUNE_A",
        "RMS_S_PREMIUM",
        "RMS_S_ENTERPRISE",
        "MFA_PREMIUM",
    ],
};
/// Power BI Pro.
pub const POWER_BI_PRO: SkuInfo = SkuInfo {
    sku_id: "f8a1db68-be16-40ed-86d5-cb42ce701560",
    part_number: "POWER_BI_PRO",
    free: false,
    product: "POWER BI PRO",
    plans: &["EXCHANGE_S_FOUNDATION", "BI_AZURE_P2"],
};
/// Microsoft Power Automate Free.
pub const FLOW_FREE: SkuInfo = SkuInfo {
    sku_id: "f30db892-07e9-47e9-837c-80727f46fd3d",
    part_number: "FLOW_FREE",
    free: true,
    product: "MICROSOFT POWER AUTOMATE FREE",
    plans: &["DYN365_CDS_VIRAL", "EXCHANGE_S_FOUNDATION", "FLOW_P2_VIRAL"],
};
/// Microsoft Teams Exploratory.
pub const TEAMS_EXPLORATORY: SkuInfo = SkuInfo {
    sku_id: "710779e8-3d4a-4c88-adb9-386c958d1fdf",
    part_number: "TEAMS_EXPLORATORY",
    free: true,
    product: "MICROSOFT TEAMS EXPLORATORY",
    plans: &[
        "TEAMS1",
        "EXCHANGE_S_DESKLESS",
        "SHAREPOINTWAC",
        "SWAY",
        "YAMMER_ENTERPRISE",
        "PROJECTWORKMANAGEMENT",
    ],
};

/// Every Microsoft SKU the generator knows.
pub const ALL_SKUS: &[SkuInfo] = &[
    ENTERPRISEPACK,
    SPE_E3,
    SPE_E5,
    O365_BUSINESS_PREMIUM,
    EMS,
    POWER_BI_PRO,
    FLOW_FREE,
    TEAMS_EXPLORATORY,
];

/// A SKU by id.
pub fn sku_info(sku_id: &str) -> Option<&'static SkuInfo> {
    ALL_SKUS
        .iter()
        .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
}

/// The add-on that is not a Microsoft product: a third party's (or a
/// partner's) subscription that Graph lists like any other, with a skuId and
/// part number that no Microsoft table knows. Clients must fall back to the
/// part number for it.
pub const CUSTOM_SKU_PART_NUMBER: &str = "CONTOSO_CUSTOM_ADDON";
/// Its one service plan (id generated per tenant).
pub const CUSTOM_SKU_PLAN: &str = "CONTOSO_ADDON_SERVICE";

/// Names for groups that are not tied to a department.
pub const PROJECT_NAMES: &[&str] = &[
    "Aurora", "Beacon", "Cascade", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris",
    "Juniper", "Keystone", "Lumen", "Meridian", "Nimbus", "Orion", "Pioneer", "Quartz", "Redwood",
    "Summit", "Tundra", "Unity", "Vertex", "Willow", "Zephyr",
];

/// Folds a display name to the ASCII an address local part can hold:
/// "Łukasz" → "lukasz", "Søren" → "soren", "O'Brien" → "obrien",
/// "van den Berg" → "vandenberg".
pub fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    ascii_fold_into(s, &mut out);
    out
}

/// [`ascii_fold`], appending to `out`.
pub fn ascii_fold_into(s: &str, out: &mut String) {
    for c in s.chars() {
        let rep: &str =
            match c {
                'a'..='z' | '0'..='9' => {
                    out.push(c);
                    continue;
                }
                'A'..='Z' => {
                    out.push(c.to_ascii_lowercase());
                    continue;
                }
                'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä'
                | 'Å' | 'Ā' | 'Ą' => "a",
                'æ' | 'Æ' => "ae",
                'ç' | 'ć' | 'č' | 'Ç' | 'Ć' | 'Č' => "c",
                'ď' | 'Ď' | 'ð' | 'Ð' => "d",
                'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' | 'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę'
                | 'Ě' => "e",
                'ì' | 'í' | 'î' | 'ï' | 'ī' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "i",
                'ł' | 'Ł' => "l",
                'ñ' | 'ń' | 'ň' | 'Ñ' | 'Ń' | 'Ň' => "n",
                'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø'
                | 'Ō' => "o",
                'œ' | 'Œ' => "oe",
                'ř' | 'Ř' => "r",
                'ś' | 'š' | 'Ś' | 'Š' => "s",
                'ß' => "ss",
                'ť' | 'Ť' => "t",
                'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' => {
                    "u"
                }
                'ý' | 'ÿ' | 'Ý' => "y",
                'ź' | 'ż' | 'ž' | 'Ź' | 'Ż' | 'Ž' => "z",
                'þ' | 'Þ' => "th",
                _ => "",
            };
        out.push_str(rep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
        assert_eq!(ascii_fold("Søren"), "soren");
        assert_eq!(ascii_fold("José"), "jose");
        assert_eq!(ascii_fold("Zoë"), "zoe");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("van den Berg"), "vandenberg");
        assert_eq!(ascii_fold("Weiß"), "weiss");
        assert_eq!(ascii_fold("Ōno"), "ono");
    }

    #[test]
    fn tables_are_well_formed() {
        for c in COUNTRIES {
            assert_eq!(c.code.len(), 2);
            assert!(!c.cities.is_empty());
            assert!(!given_names(c.locale).is_empty());
            assert!(!surnames(c.locale).is_empty());
        }
        for &h in HOME_COUNTRIES {
            assert!(h < COUNTRIES.len());
        }
        for d in DEPARTMENTS {
            assert!(!d.titles.is_empty());
        }
        for s in ALL_SKUS {
            assert!(crate::rng::is_guid(s.sku_id));
            for p in s.plans {
                assert!(service_plan(p).is_some(), "{p}");
            }
        }
        for (name, id, applies) in SERVICE_PLANS {
            assert!(crate::rng::is_guid(id), "{name}");
            assert!(["User", "Company"].contains(applies));
        }
    }
}
