"""Short passages written for the grounding benchmark, each with a question and an answer grounded in it.

An answer marks its checkable facts as [[text|kind]] or [[text|kind|alternative;alternative]]. Kinds: number,
date, time, name, entity. `build.py` changes one marked fact at a time to make the ungrounded twin; the first marked
fact of each answer is the one its question asks for (the RAG benchmark's expected fact).
"""

PASSAGES = [
    # notices
    ("notice", "The community pool opens at 7:15 AM every weekday and at 9 AM on weekends. Lifeguards are on duty "
     "until 8 PM. Swimming lessons for children start on 4 June.",
     "When does the pool open on weekdays?",
     "The pool opens at [[7:15 AM|time]] on weekdays, and lifeguards stay until [[8 PM|time]]."),
    ("notice", "Water will be shut off on Elm Street on Thursday, 12 March, from 10 AM to 2 PM while the city "
     "replaces a main pipe. Residents of 46 households have been notified.",
     "Which street loses water during the repair?",
     "Water will be shut off on [[Elm Street|entity|Oak Street;Maple Street]] on [[Thursday, 12 March|date]], "
     "affecting [[46|number]] households."),
    ("notice", "The Riverside Library will close for renovation from 1 July to 15 August. During the closure, "
     "books can be returned at the Hillcrest branch, which extends its hours to 9 PM.",
     "Where can books be returned during the closure?",
     "Books can be returned at the [[Hillcrest|entity|Westgate;Lakeside]] branch, open until [[9 PM|time]], while "
     "Riverside is closed until [[15 August|date]]."),
    ("notice", "The staff meeting moves to Room 214 on Wednesday at 3:30 PM. Maria Lopez will present the budget "
     "for the next quarter, and attendance is required for all 18 team leads.",
     "Who presents the budget at the staff meeting?",
     "[[Maria Lopez|name]] presents the budget in Room [[214|number]] on Wednesday at [[3:30 PM|time]]."),
    ("notice", "Recycling pickup in the North district changes from Monday to Tuesday starting 3 February. Bins "
     "must be at the curb by 6 AM, and glass is collected only every second week.",
     "What day is recycling picked up in the North district now?",
     "Recycling is now picked up on [[Tuesday|date]], starting [[3 February|date]], with bins out by "
     "[[6 AM|time]]."),
    ("notice", "The annual charity run raised 12,400 dollars for the children's hospital. A total of 327 runners "
     "finished the 10 km course, and the fastest time was set by Tom Becker.",
     "How much money did the charity run raise?",
     "The run raised [[12,400|number]] dollars; [[327|number]] runners finished and [[Tom Becker|name]] was "
     "fastest."),
    ("notice", "Flu vaccinations are available at the Central Clinic on Saturdays between 8 AM and noon. Bring your "
     "insurance card; the shot is free for anyone over 65.",
     "When are flu vaccinations available?",
     "Vaccinations are given at the [[Central Clinic|entity|North Clinic;Harbor Clinic]] on [[Saturdays|date]] from "
     "[[8 AM|time]], free for people over [[65|number]]."),
    # schedules
    ("schedule", "The 42 bus leaves the central station every 20 minutes from 5:40 AM. The last bus departs at "
     "11:50 PM and reaches the airport 35 minutes later.",
     "When does the last 42 bus leave?",
     "The last bus leaves at [[11:50 PM|time]] and takes [[35|number]] minutes to reach the airport."),
    ("schedule", "The ferry to Brook Island sails at 8 AM, 1 PM and 6 PM from April to September. In winter only "
     "the 1 PM sailing runs. The crossing takes 50 minutes.",
     "How long does the ferry crossing take?",
     "The crossing takes [[50|number]] minutes, and in winter only the [[1 PM|time]] sailing to "
     "[[Brook Island|entity|Gull Island;Pine Island]] runs."),
    ("schedule", "The spring semester begins on 19 January and ends on 8 May. Final exams run for two weeks, and "
     "grades are published on 22 May.",
     "When does the spring semester begin?",
     "The semester begins on [[19 January|date]] and ends on [[8 May|date]]; grades come out on [[22 May|date]]."),
    ("schedule", "The conference keynote by Dr. Anika Rao starts at 9:15 AM in Hall B. Workshops follow at 11 AM, "
     "and the closing panel is at 4:45 PM.",
     "Who gives the keynote?",
     "The keynote is by [[Anika Rao|name]] at [[9:15 AM|time]] in [[Hall B|entity|Hall D;Hall A]]."),
    ("schedule", "Trains on the Coastal Line run hourly between Portview and Sandhaven. The journey takes 1 hour "
     "and 25 minutes, and the first train leaves Portview at 6:05 AM.",
     "When does the first train leave Portview?",
     "The first train leaves [[Portview|entity|Northbay;Eastmoor]] at [[6:05 AM|time]], and the trip to "
     "Sandhaven takes 1 hour and [[25|number]] minutes."),
    ("schedule", "The museum is open Tuesday to Sunday from 10 AM to 6 PM and closed on Mondays. On the first "
     "Friday of each month it stays open until 10 PM with free entry.",
     "What day is the museum closed?",
     "The museum is closed on [[Mondays|date]], and on the first Friday of the month it stays open until "
     "[[10 PM|time]]."),
    ("schedule", "Registration for the youth football league closes on 31 August. Training starts on 7 September "
     "on Saturdays at 10 AM at Greenfield Park, and the fee is 85 dollars per child.",
     "How much is the league fee?",
     "The fee is [[85|number]] dollars per child; training starts on [[7 September|date]] at "
     "[[Greenfield Park|entity|Riverside Park;Oakwood Park]]."),
    # product facts
    ("product", "The Aero 5 vacuum weighs 2.6 kg and runs for 45 minutes on one charge. Its battery recharges in "
     "3 hours, and the dust bin holds 0.8 litres.",
     "How long does the Aero 5 run on one charge?",
     "It runs for [[45|number]] minutes per charge, weighs [[2.6|number]] kg and recharges in [[3|number]] hours."),
    ("product", "The Lumen desk lamp has five brightness levels and a 10 W LED. It is made by Brightwell in "
     "Denmark and comes with a 3 year warranty.",
     "Who makes the Lumen desk lamp?",
     "It is made by [[Brightwell|entity|Lightcraft;Glowtech]] in [[Denmark|entity|Sweden;Norway]], with a "
     "[[3|number]] year warranty."),
    ("product", "The Trail X hiking boot is waterproof, weighs 540 grams per boot and is sold in sizes 36 to 47. "
     "It costs 149 euros.",
     "How much does the Trail X boot cost?",
     "The Trail X costs [[149|number]] euros and weighs [[540|number]] grams per boot."),
    ("product", "The Kettle Pro boils 1.7 litres of water in about 4 minutes. It switches off automatically and has "
     "a 2,200 watt heating element.",
     "How much water does the Kettle Pro hold?",
     "It holds [[1.7|number]] litres and boils it in about [[4|number]] minutes with a [[2,200|number]] watt "
     "element."),
    ("product", "The Nova phone has a 6.1 inch screen, 128 GB of storage and a 4,000 mAh battery. It was released "
     "in March 2023 by Orbitel.",
     "How big is the Nova phone's battery?",
     "The battery holds [[4,000|number]] mAh; the phone has a [[6.1|number]] inch screen and was released in "
     "[[March 2023|date]] by [[Orbitel|entity|Telvia;Mobicom]]."),
    ("product", "The Breeze fan has three speeds and a timer of up to 8 hours. It draws 35 watts and is 40 cm tall.",
     "How long can the Breeze fan's timer run?",
     "The timer runs for up to [[8|number]] hours, and the fan draws [[35|number]] watts."),
    ("product", "The Orchard cider is brewed in Somerset from three apple varieties and has 4.5 percent alcohol. A "
     "case holds 12 bottles.",
     "Where is Orchard cider brewed?",
     "It is brewed in [[Somerset|entity|Devon;Kent]] with [[4.5|number]] percent alcohol, [[12|number]] bottles a "
     "case."),
    # history
    ("history", "Marie Curie was the first person to win two Nobel Prizes: in physics in 1903, and in chemistry in "
     "1911 for discovering polonium and radium.",
     "When did Marie Curie win the Nobel Prize in chemistry?",
     "[[Marie Curie|name]] won the chemistry prize in [[1911|date]], after the physics prize in [[1903|date]], for "
     "discovering [[polonium|entity|uranium;thorium]] and radium."),
    ("history", "The Rosetta Stone carries the same decree in three scripts: hieroglyphic, Demotic and ancient "
     "Greek. It let Jean-Francois Champollion decipher hieroglyphs in 1822.",
     "Who deciphered hieroglyphs using the Rosetta Stone?",
     "[[Jean-Francois Champollion|name]] deciphered them in [[1822|date]], using the decree written in "
     "[[three|number]] scripts."),
    ("history", "The Berlin Wall fell on 9 November 1989, after 28 years dividing the city. Germany was reunified "
     "less than a year later, on 3 October 1990.",
     "When did the Berlin Wall fall?",
     "The wall fell on [[9 November 1989|date]] after [[28|number]] years; Germany reunified on "
     "[[3 October 1990|date]]."),
    ("history", "The first Tour de France was held in 1903. It had six stages covering about 2,428 kilometres, and "
     "Maurice Garin won it.",
     "Who won the first Tour de France?",
     "[[Maurice Garin|name]] won the first Tour in [[1903|date]], over [[six|number]] stages."),
    ("history", "Apollo 11 landed on the Moon on 20 July 1969. Neil Armstrong and Buzz Aldrin walked on the surface "
     "while Michael Collins stayed in orbit.",
     "Who stayed in orbit during Apollo 11?",
     "[[Michael Collins|name]] stayed in orbit while Armstrong and Aldrin walked on the Moon on "
     "[[20 July 1969|date]]."),
    ("history", "The Great Fire of London began on 2 September 1666 in a bakery on Pudding Lane. It destroyed about "
     "13,200 houses and St Paul's Cathedral.",
     "Where did the Great Fire of London begin?",
     "It began in a bakery on [[Pudding Lane|entity|Fish Street;Bread Street]] on [[2 September 1666|date]] and "
     "destroyed about [[13,200|number]] houses."),
    ("history", "The Panama Canal opened on 15 August 1914. It is about 82 kilometres long and saves ships a voyage "
     "around Cape Horn.",
     "How long is the Panama Canal?",
     "The canal is about [[82|number]] kilometres long and opened on [[15 August 1914|date]]; it spares ships the "
     "trip around [[Cape Horn|entity|Cape Town;Cape Verde]]."),
    ("history", "Johannes Gutenberg printed his Bible in Mainz around 1455. About 180 copies were made, and 49 are "
     "known to survive.",
     "How many copies of the Gutenberg Bible survive?",
     "[[49|number]] copies survive of about [[180|number]] printed by [[Johannes Gutenberg|name]] in "
     "[[Mainz|entity|Cologne;Strasbourg]]."),
    # science
    ("science", "Water boils at 100 degrees Celsius at sea level, but at the top of Mount Everest it boils at about "
     "70 degrees because the air pressure is lower.",
     "At what temperature does water boil on Everest?",
     "On [[Everest|entity|Kilimanjaro;Denali]] water boils at about [[70|number]] degrees, against [[100|number]] "
     "at sea level."),
    ("science", "Light from the Sun takes about 8 minutes and 20 seconds to reach Earth. The Sun is roughly 150 "
     "million kilometres away.",
     "How long does sunlight take to reach Earth?",
     "It takes about [[8|number]] minutes and [[20|number]] seconds, over roughly [[150|number]] million "
     "kilometres."),
    ("science", "An adult human body has 206 bones. The smallest, the stapes, is in the middle ear, and the longest "
     "is the femur in the thigh.",
     "How many bones does an adult human have?",
     "An adult has [[206|number]] bones; the smallest is the [[stapes|entity|incus;malleus]] and the longest the "
     "[[femur|entity|tibia;humerus]]."),
    ("science", "Honeybees tell nestmates where flowers are with the waggle dance. The angle of the dance shows the "
     "direction relative to the Sun, and a waggle run of one second means about 1 kilometre.",
     "What does one second of waggle run mean?",
     "One second of waggle run means about [[1|number]] kilometre, and the angle shows direction relative to the "
     "[[Sun|entity|Moon;hive entrance]]."),
    ("science", "Mars has two small moons, Phobos and Deimos. A day on Mars lasts 24 hours and 37 minutes, and its "
     "year is 687 Earth days.",
     "How long is a year on Mars?",
     "A Martian year is [[687|number]] Earth days; Mars has [[two|number]] moons, [[Phobos|entity|Titan;Europa]] "
     "and Deimos."),
    ("science", "Penicillin was discovered by Alexander Fleming in 1928 when mould killed bacteria in a dish he had "
     "left at St Mary's Hospital in London.",
     "Who discovered penicillin?",
     "[[Alexander Fleming|name]] discovered it in [[1928|date]] at [[St Mary's Hospital|entity|Guy's Hospital;"
     "King's College]]."),
    ("science", "The speed of sound in air is about 343 metres per second at 20 degrees Celsius. In water it is "
     "more than four times faster, about 1,480 metres per second.",
     "How fast does sound travel in water?",
     "Sound travels about [[1,480|number]] metres per second in water, against [[343|number]] in air."),
    ("science", "The blue whale is the largest animal known. Adults reach about 30 metres in length and can weigh "
     "up to 190 tonnes, and a newborn calf weighs about 3 tonnes.",
     "How long can a blue whale grow?",
     "Adults reach about [[30|number]] metres and up to [[190|number]] tonnes; a calf weighs about [[3|number]] "
     "tonnes."),
    # geography and travel
    ("geography", "Mount Everest, on the border between Nepal and China, is 8,849 metres high, a figure measured in "
     "2020. It was first climbed in 1953 by Edmund Hillary and Tenzing Norgay.",
     "How high is Mount Everest?",
     "Everest is [[8,849|number]] metres high, measured in [[2020|date]]; [[Edmund Hillary|name]] and Tenzing "
     "Norgay first climbed it in [[1953|date]]."),
    ("geography", "The Great Barrier Reef lies off the coast of Queensland in Australia. It stretches for about "
     "2,300 kilometres and is made of nearly 3,000 individual reefs.",
     "Where is the Great Barrier Reef?",
     "It lies off [[Queensland|entity|Victoria;Tasmania]] and stretches for about [[2,300|number]] kilometres "
     "across nearly [[3,000|number]] reefs."),
    ("geography", "Lake Baikal in Siberia is the deepest lake in the world at 1,642 metres. It holds about a fifth "
     "of the world's unfrozen fresh water.",
     "How deep is Lake Baikal?",
     "[[Lake Baikal|entity|Lake Ladoga;Lake Onega]] is [[1,642|number]] metres deep."),
    ("travel", "Visitors to the Alhambra in Granada must book tickets in advance. Each ticket gives a 30 minute "
     "slot for the Nasrid Palaces, and the site admits about 8,000 people a day.",
     "Which part of the Alhambra has a timed slot?",
     "The [[Nasrid Palaces|entity|Generalife Gardens;Alcazaba]] have a [[30|number]] minute slot, and the site in "
     "[[Granada|entity|Seville;Cordoba]] admits about [[8,000|number]] people a day."),
    ("travel", "Check-in at the Harbour Hotel starts at 3 PM and check-out is at 11 AM. Breakfast is served from "
     "6:30 AM in the Seaview restaurant.",
     "When is check-out at the Harbour Hotel?",
     "Check-out is at [[11 AM|time]]; check-in starts at [[3 PM|time]] and breakfast is served from "
     "[[6:30 AM|time]] in the [[Seaview|entity|Skyline;Garden]] restaurant."),
    # health and instructions
    ("health", "Take one tablet of Cortamol every 8 hours with food. Do not take more than 3 tablets in 24 hours, "
     "and stop after 5 days unless Dr. Patel advises otherwise.",
     "How often should Cortamol be taken?",
     "Take one tablet every [[8|number]] hours with food, at most [[3|number]] in 24 hours, for up to "
     "[[5|number]] days unless Dr. [[Patel|name]] says otherwise."),
    ("health", "Adults need about 7 to 9 hours of sleep a night. Teenagers need 8 to 10 hours, and school-age "
     "children 9 to 12 hours.",
     "How much sleep do teenagers need?",
     "Teenagers need [[8|number]] to 10 hours; adults need about [[7|number]] to 9."),
    ("recipe", "For the bread, mix 500 grams of flour with 350 ml of warm water and 7 grams of yeast. Let it rise "
     "for 2 hours, then bake at 230 degrees for 35 minutes.",
     "How long should the bread bake?",
     "Bake it for [[35|number]] minutes at [[230|number]] degrees after a [[2|number]] hour rise."),
    ("recipe", "The lemon cake needs 4 eggs, 200 grams of sugar and the zest of 2 lemons. Bake it at 180 degrees for "
     "40 minutes and let it cool for 15 minutes.",
     "How many eggs does the lemon cake need?",
     "It needs [[4|number]] eggs and [[200|number]] grams of sugar, baked for [[40|number]] minutes."),
    # company and sports
    ("company", "Northwind Logistics was founded in 1987 by Helen Park in Rotterdam. It now employs 2,150 people "
     "and runs 14 warehouses across Europe.",
     "Who founded Northwind Logistics?",
     "[[Helen Park|name]] founded it in [[1987|date]] in [[Rotterdam|entity|Antwerp;Hamburg]]; it runs "
     "[[14|number]] warehouses."),
    ("company", "The quarterly report shows revenue of 4.2 million dollars, up 18 percent from last year. The CFO, "
     "Daniel Okafor, expects growth to slow in the fourth quarter.",
     "How much did revenue grow?",
     "Revenue grew [[18|number]] percent to [[4.2|number]] million dollars, and CFO [[Daniel Okafor|name]] expects "
     "slower growth."),
    ("sports", "The city marathon on 26 April was won by Grace Mwangi in 2 hours and 21 minutes. Over 9,000 runners "
     "took part, starting at 7:30 AM from Victoria Square.",
     "Who won the city marathon?",
     "[[Grace Mwangi|name]] won in 2 hours and [[21|number]] minutes, on [[26 April|date]], from "
     "[[Victoria Square|entity|Albert Square;Market Square]]."),
    ("sports", "The Lakers beat the Celtics 112 to 104 on Friday night. LeBron James scored 31 points, and the next "
     "game is on Sunday at 6 PM.",
     "What was the final score?",
     "The Lakers won [[112|number]] to [[104|number]]; [[LeBron James|name]] scored 31 and the next game is on "
     "[[Sunday|date]]."),
    # technology
    ("tech", "Python was created by Guido van Rossum. Its first version was released in 1991, and version 3.0 came "
     "out in December 2008.",
     "Who created Python?",
     "[[Guido van Rossum|name]] created Python, first released in [[1991|date]]; version 3.0 came out in "
     "[[December 2008|date]]."),
    ("tech", "The office Wi-Fi network is called Orion-5G and its password changes on the first Monday of every "
     "month. Printing costs 5 cents a page, and the IT desk is on floor 3.",
     "What is the office Wi-Fi network called?",
     "The network is [[Orion-5G|entity|Vega-5G;Sirius-5G]]; printing costs [[5|number]] cents a page and IT is on "
     "floor [[3|number]]."),
    ("tech", "The backup job runs every night at 2 AM and keeps copies for 30 days. A full backup of the 600 GB "
     "server takes about 90 minutes.",
     "When does the backup job run?",
     "It runs every night at [[2 AM|time]], keeps copies for [[30|number]] days and takes about [[90|number]] "
     "minutes."),
]
