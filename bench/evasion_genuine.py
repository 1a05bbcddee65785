"""Hand-written genuine first messages for bench/evasion.py, written to be hard: the same
friendly openers campaigns use, links, requests for a call, and several messages from one
person on one topic (one account writing to several people about the same thing)."""

from __future__ import annotations

GENUINE: list[str] = [
    # "thanks for the follow", then something specific
    "Thanks for the follow! I saw you're also into film photography, which lab do you use "
    "for developing? Mine closed last month and I'm a bit lost.",
    "Thanks for the follow, Sam. Your sourdough pictures are unreal, how long do you "
    "proof the dough in the fridge?",
    "Thanks for the follow! Are you the same Jonas who ran the chess club at university? "
    "If so, it's been way too long.",
    "Thanks for following back. Quick question about your bike tour through Slovenia: did "
    "you camp or book guesthouses along the way?",
    "Thanks for the follow! I think we met at the climbing gym on Tuesday, you lent me "
    "your chalk bag. Still owe you a coffee for that.",
    "Thanks for the follow and the kind comment on my drawing. I used gouache on cold "
    "press paper, happy to share the palette if you want.",
    "Thanks for following! Your thread on mechanical keyboards convinced me to build one, "
    "do you think brown switches are too mushy for coding?",
    "Thanks for the follow, neighbour! Do you know if the farmers market on Elm Street is "
    "still running in winter?",
    # personal references that look like AI openers
    "Saw your post about migrating to Postgres, we're stuck on the same issue with "
    "sequences after the import. Did you reset them by hand or with a script?",
    "Loved your thread on dbt tests. We tried the same approach and our CI time doubled, "
    "did you run into that? Would love to compare notes.",
    "Your talk at PyCon about packaging was the best one I saw. I tried your pyproject "
    "template and hit an error with editable installs, is that a known thing?",
    "Congrats on the new job at Lumen! My sister worked there for years and loved the "
    "team. Let me know when you're settled and we can grab lunch.",
    "Really enjoyed your write-up on your trip to Japan. We're going in April with two "
    "kids, was the rail pass worth it for you?",
    "Your podcast episode with the beekeeper was fascinating. My grandfather kept bees "
    "and I still have his old smoker, any idea if it's safe to use?",
    "Congrats on the Series B! I remember when you were demoing the prototype at the "
    "hackathon in that freezing warehouse. Proud of you.",
    "Just read your piece on pricing for dev tools. I disagree with the part on seat "
    "pricing, but in a friendly way, want to argue about it over a call sometime?",
    # links that are not campaigns
    "Here's the recipe I mentioned at the party: https://www.seriouseats.com/lasagna "
    "Use less salt than they say, trust me.",
    "Found the article about the old train station you were asking about: "
    "https://cityarchive.org/stations/1911 The photos near the end are amazing.",
    "This is the apartment listing I told you about, it's two blocks from your office: "
    "https://rentals.example.com/listing/88123 Let me know before Friday.",
    "The slides from my talk are up here: https://speakerdeck.com/mara/tiny-databases "
    "You asked about the benchmark on slide 14, the raw numbers are in the appendix.",
    "Sharing the photo album from the wedding: https://photos.app.goo.gl/x7Kd9 You look "
    "great in the one by the lake!",
    "Here's the bug report I filed after our chat: https://github.com/acme/ferry/issues/412 "
    "Feel free to add your stack trace there.",
    "The volunteer sign-up sheet for the beach cleanup is here: https://forms.gle/abcd12 "
    "We still need two people with cars.",
    # links through URL shorteners, as campaigns use them (template_reuse takes every
    # shortener for one link destination), some of them asking for something
    "Thanks for the follow! We're playing our first gig at the Crown on Friday, tickets "
    "are cheap and it would be lovely to see a friendly face: https://bit.ly/crown-gig-fri",
    "Hi! I'm the one who asked about cargo bikes at the meetup. This is the model I'm "
    "looking at, would love your take before I buy it: https://tinyurl.com/cargo-bike-q",
    "Saw your post about learning Rust. I wrote up the notes from our study group, they "
    "might save you a weekend: lnkd.in/rust-notes-g7 Happy to add you to the group chat.",
    "Our street is raising money for the school library this month. No pressure at all, "
    "just sharing in case you want to pass it on: https://bit.ly/elm-library-fund",
    "Thanks for following back! This is the thread about renting a narrowboat I "
    "mentioned, the replies have all the good tips: https://t.co/Xc81kLmz",
    "Loved your photos from the marathon. I'm training for my first half and a friend sent "
    "me this plan, did you use something like it? https://ow.ly/half-plan-12",
    "Hey, it's Dana from the pottery class. The kiln schedule for next term is up, sign "
    "up early because the slots go fast: https://rb.gy/kiln-term",
    "We're hiring a junior designer at the studio and I thought of your friend Ines from "
    "the workshop, could you pass this on? https://buff.ly/studio-junior",
    # asking for a call, but personal
    "Would you have 15 minutes this week for a quick call? I'm deciding whether to accept "
    "the offer from Northwind and you know their team better than anyone.",
    "Could we hop on a call tomorrow about the lease? The landlord wants an answer by "
    "Thursday and I'm not sure about the break clause.",
    "Are you free for a call on Saturday morning? Mum wants to plan dad's 70th and I'd "
    "rather we agree on the restaurant before she books something.",
    "Can we do a video call later? I'm stuck on the last chapter of my thesis and your "
    "comments on the draft were the most useful ones I got.",
    "Do you have time for a short call about the garden plot? The council says we can "
    "split it, but only if we both sign the form by the end of the month.",
    # one person, one topic, several people (a reunion)
    "Hey! We're finally doing the class of 2012 reunion on June 14th at the old boathouse. "
    "Can you make it? Bring your partner if you like.",
    "Hi, long time no see. A few of us from the 2012 class are meeting at the boathouse on "
    "the 14th of June, you have to come, Marco is flying in from Chile.",
    "Remember the boathouse where we had prom drinks? That's where the reunion is, June 14. "
    "Let me know if you're in so I can tell the caterer.",
    # one person, one topic, several people (a lost dog)
    "Sorry to message out of the blue, our dog Biscuit ran off near Maple Park this "
    "morning. He's a small brown terrier with a red collar. Please call if you see him.",
    "Hi, you live near the park, right? Biscuit slipped his leash this morning and we "
    "can't find him. Brown terrier, red collar, very friendly.",
    "Have you seen a little brown dog with a red collar around Maple Park? It's Biscuit, "
    "he got away from my son earlier today and we're worried sick.",
    # one person, one topic (a band looking for a drummer)
    "Hey, I heard from Lena that you play drums. Our band lost its drummer last month and "
    "we have a gig in March, would you like to jam with us one evening?",
    "Hi! Are you still drumming? We're a four-piece playing mostly indie covers and we "
    "need someone for a show in March. Rehearsals are Wednesdays.",
    "Lena said you might be looking for a band. We play indie rock, rehearse Wednesday "
    "nights in Leo's garage, and we have our first gig in March. Interested?",
    # one person, one topic (selling a sofa)
    "Hi, you asked in the neighbourhood group about a sofa. Mine is a grey three-seater, "
    "two years old, no pets. It's yours for 150 if you can pick it up.",
    "Saw your post looking for furniture for the new flat. I'm moving out and selling a "
    "grey sofa, a desk and a lamp, all cheap. Want photos?",
    # friendly openers + specific questions
    "Hi there! I'm the new tenant on the third floor. The parcel for flat 3B got left at "
    "my door, is that yours? Happy to drop it off tonight.",
    "Hey, hope you're well! Did you end up finishing the marathon in Valencia? I looked "
    "for your name in the results but couldn't find it.",
    "Hi! We met at Anna's birthday, I was the one with the terrible magic tricks. You "
    "mentioned a good dentist near the station, could you send me the name?",
    "Hello! I'm organising the office book club and heard you're a big Le Guin fan. We're "
    "reading The Dispossessed next month, would you like to join?",
    "Hey! Your cat is sitting on my balcony again, he seems very happy with the tomato "
    "plants. Should I send him home or is he allowed out?",
    "Hi, I hope this isn't weird. I found a wallet on the 42 bus with your business card "
    "in it. Where can I drop it off for you?",
    "Hello, I'm a student at the university writing about urban beekeeping. Would you be "
    "willing to answer five questions by email about your rooftop hives?",
    "Hi, your comment on the housing forum about the heating bills was really helpful. "
    "Did you get the radiators replaced through the landlord or yourself?",
    "Hey, good game yesterday! You crushed that backhand. Want to play again next week, "
    "same court at seven?",
    "Hi! I'm Tom's cousin, he said you're the person to ask about adopting a rescue "
    "greyhound. Is the shelter in Oakridge a good place to start?",
    "Hey, are you the one who posted about the lost keys near the library? I think I saw "
    "a set with a blue lanyard at the front desk this afternoon.",
    "Hello! I loved your pottery at the craft fair on Sunday. Do you take commissions? I'd "
    "like a set of four mugs for my parents' anniversary.",
    "Hi, I'm running the charity bake sale at the school next Friday. Would you be able to "
    "make another batch of those lemon bars? They sold out first last year.",
    "Hey, did you manage to get tickets for the concert in November? I have a spare one "
    "because my brother cancelled, it's yours at face value.",
    "Hi, I'm moving to Lisbon in spring and saw you've lived there for years. Which "
    "neighbourhood would you pick for someone who cycles to work?",
    "Hello, my daughter is in the same class as yours. The teacher asked parents to help "
    "with the museum trip on the 9th, are you going? We could carpool.",
    "Hey! I finally tried that ramen place you recommended and it was incredible. What "
    "else should I order next time besides the tonkotsu?",
    "Hi, your talk at the library about family history research inspired me. I found my "
    "great-grandmother in the 1911 census! Where should I look next?",
    "Hey, I think you dropped your scarf at the cinema last night, a green wool one. I gave "
    "it to the staff, just ask at the ticket desk.",
    "Hi! Thanks for the advice about the visa paperwork last week. The appointment went "
    "fine and I got approved. Drinks are on me next time.",
    "Hello, I'm the coach of the under-10 football team. Your son mentioned he'd like to "
    "join, training is Saturdays at nine on the east field.",
    "Hey, are you still renting out the parking spot behind your building? My car got "
    "towed twice this month and I'm desperate.",
    "Hi! Saw your review of the hiking boots you bought in October. After three months, "
    "are they still waterproof? Thinking of the same pair.",
    "Hey, I'm putting together a small hackathon for local high school students in May. "
    "Would you be up for mentoring a team for one afternoon?",
    "Hi, I think we're on the same flight to Montreal on Thursday, the conference one. Want "
    "to share a taxi from the airport?",
    "Hey, the choir is short on tenors for the Christmas concert and Maria said you sing. "
    "Rehearsals are Mondays at the church hall, no audition needed.",
    "Hi! Your knitting pattern for the fox hat is adorable. I'm stuck at row 32, is the "
    "decrease supposed to happen on every stitch or every other one?",
    "Hello, I'm your new neighbour at number 12. Our fence is leaning into your garden "
    "after the storm, can we have a look together this weekend?",
    "Hey, we met at the startup breakfast on Wednesday. You asked about our accessibility "
    "testing setup, here's the checklist I promised: https://a11y.example.org/checklist",
    "Hi! I'm the one who bought your old bike last summer. The gears started slipping, did "
    "you ever have to adjust the derailleur yourself?",
    "Hey, quick question: the community garden meeting is moved to Thursday, can you still "
    "bring the folding chairs? I'll handle the snacks.",
    "Hi, I'm researching the history of our street for the local newsletter. Your family "
    "has lived there longest, could I visit and ask a few questions?",
    "Hello! I loved the photos from your trip to Iceland. Which month did you go? We're "
    "hoping to see the northern lights but also drive the ring road.",
    "Hey! Congratulations on the baby! We have a box of barely used baby clothes, sizes 0 "
    "to 6 months, would you like them?",
    "Hi, I read your post about learning Portuguese at 50. I'm 54 and just started, which "
    "app or teacher worked best for you?",
    "Hey, your band's set at the pub on Friday was fantastic. Do you have the setlist? My "
    "friend wants to know the name of the second song.",
    "Hi, I'm with the neighbourhood watch. There were two break-ins on Cedar Lane this "
    "week, just letting residents know to lock their sheds.",
    "Hello, I saw you're a translator from Polish. My grandmother's letters are in Polish "
    "and I'd love to know what they say. Would you take that on, paid of course?",
    "Hey! Loved your thread about raising chickens in the city. Do your neighbours mind the "
    "noise? I'm trying to convince mine.",
    "Hi, the chess tournament at the community centre needs one more arbiter for Saturday. "
    "You did it last year, any chance you're free?",
    "Hey, I noticed we both backed the same board game on Kickstarter. Mine arrived with a "
    "missing card, did yours come complete?",
    "Hi! I'm planning a surprise party for Jana on the 20th. You're her oldest friend, could "
    "you help me get her to the restaurant without her suspecting?",
    "Hello, I run the small bookshop on Bridge Street. A customer left a reservation for a "
    "book under your name, it arrived today.",
    "Hey, saw your question on the forum about fixing a leaking tap. I'm a retired plumber, "
    "if you send a photo of the valve I can tell you which washer to buy.",
    "Hi, I've been following your garden renovation posts. The stone path looks great, did "
    "you lay it on sand or on mortar?",
    "Hey! We're doing a potluck for the new families at the school on Sunday. No need to "
    "bring anything the first time, just come and say hi.",
    "Hi, I'm putting together a zine of local poets and loved the poem you read at the open "
    "mic. Would you let us print it? We'd credit you, of course.",
    "Hello! Your post about the broken streetlight on Pine Road got me thinking. Shall we "
    "write to the council together? More names might speed it up.",
    "Hey, I owe you an apology for cancelling on Saturday. My car broke down on the way. "
    "Can we reschedule the hike for next weekend?",
]

SHORT_REPLIES: list[str] = [
    "thanks!",
    "Ok, see you then",
    "Sounds good 👍",
    "Thanks for the follow!",
    "haha yes",
    "Sorry, I'll call later",
    "Got it, thanks",
    "On my way",
    "Happy birthday!!",
    "Congrats 🎉",
    "lol same",
    "Sure, why not",
    "Thank you so much!",
    "Will do",
    "Nice one",
    "Yes please",
    "No worries",
    "See you tomorrow",
    "Good luck today!",
    "Miss you",
    "Love it",
    "Can't wait",
    "Call me?",
    "👍",
    "Perfect, thanks",
    "Running late, sorry",
    "Let me check",
    "Talk soon",
    "Great news!",
    "Cheers mate",
]
