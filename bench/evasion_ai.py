"""Hand-written AI-style campaigns for bench/evasion.py: each DM written by hand, the way
AI outreach tools write them — an opener about the recipient, then one offer reworded every
time, with the campaign's link (per-recipient parameters added by the benchmark)."""

from __future__ import annotations

# campaign name -> its DMs, one per recipient; {link} is the campaign's link.
AI_CAMPAIGNS: dict[str, list[str]] = {
    "pipeline_audit": [
        "Saw your post about migrating to Postgres at Acme, impressive numbers. We run free "
        "pipeline audits for data teams and usually find 30% of wasted warehouse spend. "
        "Worth a look? {link}",
        "Loved your thread on dbt testing last week. Our team does a free audit of data "
        "pipelines and tends to uncover a third of the warehouse bill as waste. Curious? {link}",
        "Your talk at Data Council on streaming joins was great. We offer a no-cost audit of "
        "your data pipeline, most teams cut around 30% of warehouse costs. Here's how: {link}",
        "Congrats on the Series B, Maya! Growing data teams waste a lot on the warehouse. "
        "We do free pipeline audits that typically save 30 percent. Have a look: {link}",
        "Really enjoyed your write-up on Snowflake credits. We audit data pipelines for free "
        "and often find a third of the spend can go. Happy to share more: {link}",
        "Noticed you're hiring analytics engineers at Brightside. Before you scale, a free "
        "audit of your pipelines might save 30% on warehouse costs. Details: {link}",
        "Your Airflow vs Dagster comparison was spot on. We run complimentary pipeline "
        "audits, and teams usually trim about 30% of their warehouse bill. See {link}",
        "Great podcast episode on data contracts! We help teams like yours with a free "
        "pipeline audit that finds roughly a third of wasted warehouse spend. Link: {link}",
        "Your migration story from Redshift was a fun read. Free offer: we audit your data "
        "pipeline and show where 30% of the warehouse money goes to waste. {link}",
        "Saw Kestrel just launched its analytics product, congrats. We do free data pipeline "
        "audits, typically cutting warehouse costs by 30%. Interested? {link}",
    ],
    "podcast_guest": [
        "Loved your take on remote onboarding in your last post. I host The Builder Hour "
        "podcast and would love to have you as a guest to talk about it. Details here: {link}",
        "Your keynote on engineering culture really stuck with me. I run The Builder Hour, a "
        "podcast for tech leaders, and we'd be thrilled to host you. More info: {link}",
        "Congrats on your book launch, Priya! I'd love to invite you onto The Builder Hour "
        "podcast to chat about it with our 20k listeners. Here's the info: {link}",
        "Your thread about hiring juniors blew up for good reason. Would you join me as a "
        "guest on The Builder Hour podcast? We talk with founders and CTOs. {link}",
        "That LinkedIn post on burnout in startups was so honest. I host a podcast called "
        "The Builder Hour and think our audience would love to hear you. {link}",
        "Just read your piece on pricing for dev tools, sharp stuff. Want to come on The "
        "Builder Hour podcast as a guest? It's a relaxed 40 minute chat. {link}",
        "Saw you moved to VP Engineering at Lumen, congratulations! I'd love to feature you "
        "on my podcast, The Builder Hour, to hear about the transition. {link}",
        "Your newsletter issue on platform teams was excellent. I'm inviting a few leaders "
        "onto The Builder Hour podcast this spring and you'd be a great fit. {link}",
        "Big fan of your open source work on Ferry. Would you be up for a guest appearance "
        "on The Builder Hour, my podcast about building tech companies? {link}",
        "Your comments at the CTO meetup were the highlight of the night. I host The Builder "
        "Hour podcast and would be honoured to have you on as a guest. {link}",
    ],
    "hiring_agency": [
        "Noticed Acme is hiring three backend engineers, exciting growth! We place "
        "pre-vetted senior developers in under two weeks, no fee unless you hire. {link}",
        "Congrats on the new office in Berlin! If you're building the team there, our "
        "agency finds vetted senior engineers within 14 days, pay only on hire. {link}",
        "Saw your job post for a staff engineer. We specialise in pre-screened senior "
        "talent delivered in two weeks, and you only pay if someone is hired. {link}",
        "Your team's blog on scaling Kafka was impressive. When you next hire, we can send "
        "you vetted senior engineers in under 14 days, fee on success only. {link}",
        "Looks like Northwind is growing fast, four open roles! Our recruiters deliver "
        "pre-vetted senior devs within two weeks, no hire no fee. More: {link}",
        "Enjoyed your post about the hiring bar at startups. We help founders hire vetted "
        "senior engineers in two weeks, and charge nothing unless you make a hire. {link}",
        "Congrats on closing your seed round, Tom! Hiring is next, and we can introduce "
        "senior engineers we've already vetted within 14 days. Only pay on hire. {link}",
        "Saw you're looking for a mobile lead at Pinecrest. We source vetted senior mobile "
        "and backend engineers within two weeks, success fee only. {link}",
        "Your engineering blog keeps getting better. If hiring is slowing you down, we "
        "deliver pre-vetted senior engineers in under two weeks, no upfront cost. {link}",
        "Noticed the careers page at Orbit lists five engineering roles. We fill senior "
        "roles with vetted candidates in two weeks, and you pay only when you hire. {link}",
    ],
    "design_audit": [
        "Your new landing page looks great, love the illustrations. I do free UX audits "
        "for SaaS sites and usually spot a few quick wins for conversions. Want one? {link}",
        "Just tried your onboarding flow, really smooth. I'm offering free UX reviews for "
        "SaaS products this month, often finding easy conversion gains. {link}",
        "Congrats on the Product Hunt launch! I run free UX audits for SaaS teams and "
        "typically find quick wins that lift sign-ups. Would you like one? {link}",
        "Love the dark mode you shipped last week. I do complimentary UX audits of SaaS "
        "websites, with a short video of conversion quick wins. Interested? {link}",
        "Your pricing page redesign is bold, nice move. I offer a free UX audit for SaaS "
        "companies and usually find a handful of fixes that raise conversion. {link}",
        "Saw your tweet asking for feedback on the new dashboard. Happy to do a free UX "
        "audit, I help SaaS teams find quick conversion wins. Here's a sample: {link}",
        "The checkout on your app is one of the cleanest I've seen. I give SaaS founders "
        "free UX audits that point out simple ways to convert more visitors. {link}",
        "Your case study about the rebrand was inspiring. This month I'm doing free UX "
        "audits for SaaS sites, a few quick wins for conversions each time. {link}",
    ],
    "ghostwriting": [
        "Your posts about leadership get great engagement. I ghostwrite LinkedIn content "
        "for founders, three posts a week in your voice, so you can focus on the company. {link}",
        "Loved your story about your first failed startup. I help busy founders stay "
        "visible with ghostwritten LinkedIn posts, written in their own voice. {link}",
        "Your comment on the remote work debate was spot on. I write LinkedIn posts for "
        "founders in their voice, three per week, so they grow without spending hours. {link}",
        "Saw you've been posting less lately, totally understandable with a launch. I "
        "ghostwrite founder content for LinkedIn so your presence keeps growing. {link}",
        "Congrats on passing 10k followers! If you want to keep that momentum, I ghostwrite "
        "weekly LinkedIn posts for founders that sound just like you. {link}",
        "Your insights on B2B sales are gold. I'm a ghostwriter for founders, turning your "
        "ideas into three LinkedIn posts a week without taking your time. {link}",
        "Enjoyed your carousel on fundraising tips. I create ghostwritten LinkedIn content "
        "for founders, in your voice, a few posts every week. Examples here: {link}",
        "Your post on hiring your first salesperson resonated with me. I write LinkedIn "
        "posts for busy founders so they stay consistent and keep their voice. {link}",
    ],
    "crm_demo": [
        "Saw your team at SalesConf, great booth! We built a CRM that logs every call and "
        "email automatically, reps save five hours a week. Quick demo? {link}",
        "Your post on sales reps drowning in admin hit home. Our CRM captures emails and "
        "calls on its own and gives reps back about five hours weekly. {link}",
        "Congrats on hitting your quarterly target, Elena! If your reps still update the "
        "CRM by hand, ours does it automatically and saves them 5 hours a week. {link}",
        "Noticed Bluepeak is expanding the sales team. Our CRM records calls and emails "
        "automatically so new reps spend 5 fewer hours on data entry each week. {link}",
        "Great webinar on outbound last Thursday. We make a CRM that fills itself in from "
        "email and calls, which frees up roughly five hours per rep per week. {link}",
        "Your thoughts on sales ops tooling were sharp. Would a CRM that automatically logs "
        "activity and saves each rep five hours a week be useful? Demo here: {link}",
        "Loved your breakdown of the sales funnel at Tidewater. Our CRM auto-logs every "
        "email and call, so reps get five hours back each week. Take a look: {link}",
        "Read your interview about scaling a sales org. Our CRM removes manual logging, it "
        "tracks calls and emails itself and saves reps around 5 hours weekly. {link}",
    ],
    "webinar_invite": [
        "Your article on cloud cost control was brilliant. We're hosting a free webinar "
        "next Tuesday on cutting AWS bills by 40%, and I'd love for you to join. {link}",
        "Saw you're speaking at KubeCon, congrats! Before that, join our free live session "
        "next Tuesday on reducing AWS costs by up to 40 percent. Register: {link}",
        "Your thread about surprise cloud invoices made me laugh. Next Tuesday we run a free "
        "webinar on trimming AWS spend by 40%, would be great to see you. {link}",
        "Loved the FinOps talk you gave in Lisbon. We have a free online workshop next "
        "Tuesday about lowering AWS costs by 40 percent, seats are limited. {link}",
        "Noticed your team moved to Kubernetes recently. Join our free webinar next Tuesday "
        "to learn how teams cut their AWS bill by up to 40%. Sign up: {link}",
        "Your newsletter on infrastructure budgets is a must-read. I'd like to invite you to "
        "a free webinar next Tuesday on saving 40% on AWS. Details: {link}",
        "Congrats on the new CTO role at Harbor! Next Tuesday we're running a free session "
        "on how to reduce AWS spending by 40%, you'd be very welcome. {link}",
        "Great question you asked at the DevOps meetup. We cover exactly that in a free "
        "webinar next Tuesday, cutting AWS costs by 40 percent. Join us: {link}",
    ],
    "seo_agency": [
        "Your bakery's Instagram is gorgeous, those croissants! I noticed your website "
        "barely shows up on Google though. We help local shops rank on page one. {link}",
        "Love what you've done with the new menu at Olive & Thyme. Your site isn't ranking "
        "for local searches yet, and we get local businesses onto Google's first page. {link}",
        "Congrats on opening the second studio, Jess! Quick note: your website is hard to "
        "find on Google. Our agency gets small businesses ranking on page one. {link}",
        "Your reviews on Yelp are fantastic. Sadly your site doesn't appear when I search "
        "for florists nearby, we specialise in putting local shops on page one. {link}",
        "Saw your shop featured in the city paper, well deserved. Your website could be "
        "getting far more Google traffic, we help local businesses reach page one. {link}",
        "The photos of your renovation projects are stunning. Your website isn't showing up "
        "in local search results, and that's exactly what our SEO team fixes. {link}",
        "Just discovered your coffee roastery, great branding. Searching for roasters in "
        "town, you don't show up on Google. We help local brands rank higher. {link}",
        "Your yoga classes look wonderful. I couldn't find your studio on Google's first "
        "page, and we get local businesses there within 90 days. More here: {link}",
    ],
    "investor_intro": [
        "Your growth this year has been remarkable, congrats. I run a syndicate of angels "
        "investing in B2B SaaS and would love to hear about your next round. {link}",
        "Saw your launch on Hacker News, the comments were glowing. Our angel syndicate "
        "backs early SaaS founders and we'd like to learn more about your plans. {link}",
        "Loved your post about bootstrapping to 1M ARR. I lead an angel group that invests "
        "in B2B software, happy to chat if you're raising soon. {link}",
        "Congrats on the partnership with Stripe! Our syndicate of angel investors focuses "
        "on SaaS, and we'd be keen to talk before your next raise. {link}",
        "Your product demo video was really well done. I manage an angel syndicate for B2B "
        "SaaS and would love an intro call about your fundraising. {link}",
        "Noticed you just crossed 500 customers, impressive. We're a group of angels backing "
        "SaaS companies and would be excited to hear about your round. {link}",
        "Your talk on product-led growth was excellent. I run an angel syndicate investing "
        "in software startups, let me know if you're open to a conversation. {link}",
        "Great to see the team growing at Quill. Our angel syndicate invests in early B2B "
        "SaaS, and I'd welcome a chat about your funding plans. {link}",
    ],
    "course_promo": [
        "Your side project on Rust parsers is so cool. I made a course that takes developers "
        "from zero to shipping production Rust in six weeks, 30% off this week. {link}",
        "Saw your question about Rust lifetimes on the forum. My six week course walks devs "
        "through production Rust step by step, with a 30% discount right now. {link}",
        "Loved your post about switching from Go to Rust. If you want to go deeper, my "
        "course teaches production Rust in six weeks, and it's 30% off now. {link}",
        "Congrats on your first crate release! My Rust course helps developers build real "
        "production services in 6 weeks, currently at 30 percent off. {link}",
        "Your blog about memory safety was a great read. I teach a six week course on "
        "writing production Rust, and this week there's a 30% discount. {link}",
        "Noticed you starred a bunch of Rust repos recently. My course gets developers "
        "shipping production Rust in six weeks, 30% off for a few more days. {link}",
        "That benchmark you shared comparing Rust and C++ was fascinating. I built a six "
        "week production Rust course and it's 30% off at the moment. {link}",
        "Your conference talk on WebAssembly was great. My course on production Rust takes "
        "six weeks and is 30 percent off this week only. Have a look: {link}",
    ],
}
