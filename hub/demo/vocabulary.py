"""Words the demo world is written in: company and people names, industries, ticket texts.

Plain data, no logic: `world.py` and the exporters draw from these lists with a seeded RNG.
"""

from __future__ import annotations

NAME_FIRST = (
    "Blue", "North", "Silver", "Bright", "Red", "Iron", "Green", "Swift", "Clear", "Golden", "Quiet",
    "Bold", "Lucky", "Crystal", "Summit", "Harbor", "Cedar", "Maple", "Stone", "River", "Sun", "Polar",
    "Pine", "Coral", "Amber", "Atlas", "Nova", "Orbit", "Prime", "Vertex", "Zen", "Apex", "Falcon",
    "Granite", "Hudson", "Juniper", "Keystone", "Lumen", "Meridian", "Oak", "Pioneer", "Quantum",
    "Redwood", "Sierra", "Tidal", "Union", "Vista", "Willow", "Yellow", "Arrow", "Beacon", "Cobalt",
    "Delta", "Ember", "Frontier", "Glacier", "Horizon", "Indigo", "Jade", "Kinetic",
)
NAME_SECOND = (
    "Harbor", "Wind", "Peak", "Field", "Bridge", "Rock", "Leaf", "Forge", "Path", "Gate", "Wave", "Point",
    "Light", "Works", "Line", "Grove", "Crest", "Shore", "Stack", "Loop", "Spark", "Trail", "Mill", "Ridge",
    "Bay", "Cloud", "Core", "Craft", "Dock", "Edge", "Flow", "Hive", "Lane", "Mark", "Nest", "Pixel",
    "Port", "Post", "Pulse", "Quill", "Root", "Sail", "Scale", "Signal", "Source", "Sphere", "Star",
    "Stream", "Tower", "Vale", "Vault", "Wing", "Yard", "Beam", "Bloom", "Canyon", "Circuit", "Compass",
    "Current", "Dawn", "Fern", "Harvest", "Lantern", "Meadow", "Orchard", "Prairie", "Rapids", "Summit",
)
NAME_THIRD = (
    "Analytics", "Logistics", "Health", "Labs", "Software", "Retail", "Foods", "Media", "Energy", "Capital",
    "Robotics", "Studios", "Systems", "Networks", "Partners", "Learning", "Travel", "Fitness", "Security",
    "Bio", "Motors", "Finance", "Legal", "Design", "Apparel", "Games", "Realty", "Insurance", "Clinics",
    "Consulting",
)
DISAMBIGUATORS = ("Group", "Co", "Holdings", "Collective", "Ventures", "Global", "International", "HQ")
TLDS = ("com", "com", "com", "io", "co", "net", "ai")
DIVISIONS = ("Logistics", "Europe", "Labs", "Retail", "Services", "APAC")  # sister companies sharing a domain

INDUSTRIES = (
    "Technology", "Healthcare", "Retail", "Financial Services", "Manufacturing", "Education", "Media",
    "Transportation", "Hospitality", "Energy", "Real Estate", "Consulting", "Insurance", "Telecommunications",
)
COUNTRIES = ("US", "US", "US", "US", "GB", "DE", "FR", "CA", "AU", "NL", "SE", "ES")

FIRST_NAMES = (
    "Ava", "Liam", "Olivia", "Noah", "Emma", "Oliver", "Sophia", "Elijah", "Isabella", "James", "Mia",
    "Lucas", "Amelia", "Mateo", "Harper", "Ethan", "Evelyn", "Aiden", "Abigail", "Logan", "Emily", "Jackson",
    "Ella", "Levi", "Chloe", "Sebastian", "Grace", "Mason", "Nora", "Henry", "Priya", "Arjun", "Yuki",
    "Hiroshi", "Fatima", "Omar", "Lena", "Jonas", "Chiara", "Marco", "Ines", "Pablo", "Zoe", "Kofi",
    "Amara", "Wei", "Mei", "Sven", "Freya", "Diego",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Patel", "Nguyen", "Kim", "Chen", "Muller",
    "Schmidt", "Rossi", "Dubois", "Silva", "Kowalski", "Novak", "Okafor", "Tanaka", "Larsen",
)
TITLES = ("CEO", "CTO", "VP Operations", "Head of Data", "Operations Manager", "Finance Director",
          "Product Manager", "IT Administrator", "Analyst", "Office Manager", "Controller", "COO")
BILLING_MAILBOXES = ("billing", "finance", "accounts", "ap", "payments")

# Our own people: the vendor running churnhub ("Lumen Metrics", a product-analytics SaaS).
VENDOR_DOMAIN = "lumenmetrics.example"
CRM_USERS = (("Dana Whitfield", "CSM"), ("Marcus Oyelaran", "CSM"), ("Sofia Brandt", "CSM"),
             ("Kenji Watanabe", "AE"), ("Rachel Osei", "AE"), ("Tom Lindqvist", "AE"))
SUPPORT_AGENTS = ("Alex Moreno", "Jamie Chen", "Priya Raman", "Chris Novak", "Sam Adeyemi")

ONBOARDING_STAGES = ("Kickoff", "Implementation", "Training", "Adopted", "Expanding")

# Ticket texts: (subject, description). Descriptions take {product} and {feature}.
NEUTRAL_TICKETS = (
    ("How do I export reports to CSV?", "Hi team, we would like to export the weekly {feature} report to CSV for our finance folks. Is there a way to schedule that?"),
    ("Add a new user to our workspace", "Could you help us add two colleagues to our {product} workspace? They did not receive the invite email."),
    ("SSO configuration question", "We are setting up SAML SSO with Okta. Which attribute should hold the email address?"),
    ("Invoice copy needed", "Our accounting department needs a PDF copy of last month's invoice with our VAT number on it."),
    ("Feature request: dark mode", "Several of our analysts asked whether {product} will get a dark mode. Just passing it on!"),
    ("API rate limit clarification", "What is the rate limit on the {feature} API? We are planning a nightly sync."),
    ("Change billing contact", "Please send invoices to our new billing address from next month on."),
    ("Question about data retention", "How long do you keep raw event data? Our compliance team is asking."),
    ("Dashboard sharing permissions", "Can viewers share a dashboard with someone outside the company?"),
    ("Training session for new team", "We have five new hires. Do you offer a short onboarding session on {feature}?"),
    ("Timezone on scheduled reports", "Scheduled reports arrive at 2am; how do we switch them to CET?"),
    ("Integration with Slack", "Is there a way to post {feature} alerts into a Slack channel?"),
)
NEGATIVE_TICKETS = (
    ("Dashboard keeps timing out - again", "This is the third time this month that {feature} dashboards time out for our whole team. We rely on this every morning and it is not acceptable."),
    ("Data sync broken for three days", "Our {feature} data has not synced for three days. Nobody has given us an answer and our leadership is asking why we pay for {product}."),
    ("Very disappointed with the latest release", "The new {feature} editor removed things we used daily. Frankly this is frustrating and we are evaluating alternatives."),
    ("Price increase is too much", "We received the renewal quote and it is far too expensive for how little we use {product}. Please explain or we will have to cancel."),
    ("Still waiting for a response", "I opened a ticket about {feature} two weeks ago and have heard nothing. This level of support is unacceptable."),
    ("Considering alternatives", "Honestly {product} has become too complex for our team. We are looking at other tools that are easier to use."),
    ("Missing features we were promised", "During the sales process we were promised {feature} exports by Q2. It is still missing and our project is blocked."),
    ("Cancel our subscription", "Please cancel our {product} subscription at the end of the current period. We no longer use it."),
    ("Users cannot log in", "Half of our users cannot log in since this morning. This is the second outage in a month. Very poor reliability."),
    ("Wrong numbers in reports", "The {feature} totals do not match our own database. We cannot trust the data anymore and our team stopped using it."),
    ("Reduce our seats", "We need to reduce the number of seats on our plan; most of the team no longer uses {product}."),
)
PAYMENT_TICKETS = (
    ("Card declined on our invoice", "We got an email that our payment failed. Our card was replaced recently; how do we update it?"),
    ("Payment failed notice", "Why did our payment fail? Please retry the invoice, we have funds available now."),
)
FEATURES = ("funnel", "retention", "cohort", "dashboard", "event", "export", "segment", "alerting")
PRODUCT = "Lumen"

GOOD_CSAT_COMMENTS = ("Quick and helpful, thanks!", "Solved in minutes.", "Great support as always.", None, None)
BAD_CSAT_COMMENTS = ("Took far too long.", "Problem is not really solved.", "Nobody understood the issue.",
                     "Very slow response.", None)
CANCELLATION_COMMENTS = {
    "too_expensive": "Budget cuts; the price no longer fits.",
    "missing_features": "We need exports and SSO roles you do not have yet.",
    "switched_service": "Moving to a competitor bundled with our data warehouse.",
    "unused": "The team stopped using it after our champion left.",
    "customer_service": "Support was too slow when it mattered.",
    "too_complex": "Too hard to set up for our small team.",
    "low_quality": "Reports were unreliable.",
    "other": "Company restructuring.",
}
