"""The demo model's little world: children, animals, colours and places, and the texts made of them.

One generator feeds both scripts, so the pretraining corpus and the fine-tuning data speak the
same language:

- `pretrain_demo.py` pretrains on `corpus()`: stories, animal facts, `key: value` fact records and chats
  (story requests, fact questions, reading questions answered in plain prose);
- `make_demo_data.py` writes the fine-tuning sets from `card_example()`: the *story card*, three
  `key: value` lines (name, animal with its colour, place) for a short story. The base model reads
  stories and answers in prose, but it never saw a story card: that format is what a short LoRA
  run teaches it, and it is checked field by field.

Everything is drawn from a `random.Random` passed in, so a seed fixes every text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# name -> subject pronoun; the stories need it for "she/he"
NAMES = {
    "Mia": "she",
    "Tom": "he",
    "Lily": "she",
    "Ben": "he",
    "Zoe": "she",
    "Max": "he",
    "Ella": "she",
    "Sam": "he",
    "Ana": "she",
    "Leo": "he",
    "Ruby": "she",
    "Jack": "he",
    "Nora": "she",
    "Finn": "he",
    "Ivy": "she",
    "Owen": "he",
    "Emma": "she",
    "Noah": "he",
    "Lucy": "she",
    "Eli": "he",
    "Rosa": "she",
    "Theo": "he",
    "Maya": "she",
    "Hugo": "he",
    "Clara": "she",
    "Adam": "he",
    "Lena": "she",
    "Oscar": "he",
    "Sara": "she",
    "Luke": "he",
    "Anna": "she",
    "Paul": "he",
    "Kate": "she",
    "Dan": "he",
    "Amy": "she",
    "Tim": "he",
}


@dataclass(frozen=True)
class Animal:
    plural: str
    sound: str  # what it "says"
    home: str  # "lives {home}"
    food: str
    can: str  # "can {can}"
    legs: int


ANIMALS = {
    "cat": Animal("cats", "meow", "in a warm house", "fish", "climb trees", 4),
    "dog": Animal("dogs", "woof", "in a house with a yard", "bones", "run fast", 4),
    "cow": Animal("cows", "moo", "on a farm", "grass", "give milk", 4),
    "duck": Animal("ducks", "quack", "in a pond", "bread", "swim", 2),
    "owl": Animal("owls", "hoot", "in a tall tree", "mice", "see in the dark", 2),
    "frog": Animal("frogs", "ribbit", "in a pond", "flies", "jump high", 4),
    "fox": Animal("foxes", "yip", "in a den in the woods", "berries", "run fast", 4),
    "sheep": Animal("sheep", "baa", "on a farm", "grass", "grow wool", 4),
    "horse": Animal("horses", "neigh", "in a barn", "hay", "run fast", 4),
    "pig": Animal("pigs", "oink", "on a farm", "corn", "roll in the mud", 4),
    "bee": Animal("bees", "buzz", "in a hive", "honey", "fly", 6),
    "mouse": Animal("mice", "squeak", "in a little hole", "cheese", "hide well", 4),
    "bird": Animal("birds", "tweet", "in a nest", "seeds", "fly", 2),
    "bear": Animal("bears", "growl", "in a cave", "honey", "climb trees", 4),
    "goat": Animal("goats", "maa", "on a hill", "leaves", "climb rocks", 4),
    "rabbit": Animal("rabbits", "squeak", "in a burrow", "carrots", "hop", 4),
    "turtle": Animal("turtles", "hiss", "in a pond", "leaves", "swim", 4),
    "hen": Animal("hens", "cluck", "on a farm", "corn", "lay eggs", 2),
    "lamb": Animal("lambs", "baa", "on a farm", "grass", "jump and play", 4),
    "puppy": Animal("puppies", "woof", "in a house with a yard", "bones", "wag its tail", 4),
}

COLORS = [
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "brown",
    "pink",
    "orange",
    "purple",
    "gray",
    "gold",
]

# place -> how a sentence says "at" it
PLACES = {
    "garden": "in the garden",
    "park": "in the park",
    "forest": "in the forest",
    "river": "by the river",
    "beach": "on the beach",
    "farm": "on the farm",
    "hill": "on the hill",
    "lake": "by the lake",
    "meadow": "in the meadow",
    "town": "in the town",
    "barn": "in the barn",
    "field": "in the field",
    "school": "at the school",
    "pond": "by the pond",
    "woods": "in the woods",
}

OBJECTS = [
    "ball",
    "kite",
    "hat",
    "boat",
    "box",
    "drum",
    "book",
    "cup",
    "key",
    "bell",
    "shoe",
    "scarf",
    "bag",
    "sock",
]
HIDES = [
    "under a big tree",
    "behind a rock",
    "in the tall grass",
    "under a bush",
    "near the old fence",
    "inside a hollow log",
    "under a pile of leaves",
]
LOOKS = ["big", "small", "old", "new", "shiny", "soft", "little"]
WEATHER = ["sunny", "windy", "rainy", "cold", "warm", "bright"]
TRAITS = ["kind", "brave", "happy", "curious", "gentle", "clever", "little"]
CARD_KEYS = ("name", "animal", "color", "place")  # the facts a card states


def a(word: str) -> str:
    """`a fox`, `an owl`."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


@dataclass(frozen=True)
class Cast:
    """Who and where a story is about: exactly the fields of a story card."""

    name: str
    animal: str
    color: str
    place: str

    @property
    def pron(self) -> str:
        return NAMES[self.name]

    def card(self) -> dict[str, str]:
        return {"name": self.name, "animal": self.animal, "color": self.color, "place": self.place}


def random_cast(rng: random.Random) -> Cast:
    return Cast(
        rng.choice(list(NAMES)), rng.choice(list(ANIMALS)), rng.choice(COLORS), rng.choice(list(PLACES))
    )


# --- stories ---------------------------------------------------------------------------------


def _opening(rng: random.Random, c: Cast, short: bool) -> list[str]:
    """Who and where. Short stories skip the introduction, so the setting names the child."""
    kid = "girl" if c.pron == "she" else "boy"
    at = PLACES[c.place]
    intro = pick(
        rng,
        f"Once upon a time, there was {a(rng.choice(TRAITS))} {kid} named {c.name}.",
        f"{c.name} was {a(rng.choice(TRAITS))} {kid} who loved to play outside.",
        f"There was a little {kid} called {c.name}.",
    )
    who = c.name if short else c.pron
    setting = pick(
        rng,
        f"One {rng.choice(WEATHER)} day, {who} went to play {at}.",
        f"Every morning, {c.name} walked to the {c.place}.",
        f"One day, {who} went for a walk {at}.",
    )
    return [setting] if short else [intro, setting]


def _meeting(rng: random.Random, c: Cast) -> str:
    at = PLACES[c.place]
    return pick(
        rng,
        f"There, {c.pron} saw {a(c.color)} {c.animal}.",
        f"{cap(c.pron)} met a little {c.color} {c.animal} {at}.",
        f"{cap(at)}, {a(c.color)} {c.animal} was sitting all alone.",
        f"Soon {c.pron} found {a(c.color)} {c.animal} {at}.",
    )


def _problem(rng: random.Random, c: Cast, short: bool) -> list[str]:
    """The middle of a story: one of a few small plots. `short` keeps it to two sentences."""
    info = ANIMALS[c.animal]
    # the thing gets a size, not a colour: a second colour word made "which colour is the
    # animal" a question the small model could not learn to read back
    obj, obj_kind = rng.choice(OBJECTS), rng.choice(LOOKS)
    plot = rng.randrange(4)

    def it() -> str:  # later mentions repeat the colour now and then, so reading it back pays off
        return f"{c.color} {c.animal}" if rng.random() < 0.4 else c.animal

    if plot == 0:
        lines = [
            f"The {it()} was sad because it had lost its {obj_kind} {obj}.",
            f"{c.name} helped the {it()} look for it, and they found it {rng.choice(HIDES)}.",
        ]
        extra = [
            f'{c.name} said, "Do not be sad, little {it()}. I will help you."',
            f'The {it()} said "{info.sound}!" and jumped with joy.',
        ]
    elif plot == 1:
        lines = [
            f"The {it()} was very hungry.",
            f"{c.name} gave the {it()} some {info.food}, and it ate it all up.",
        ]
        extra = [
            f'"Thank you," said the {it()}. "I love {info.food}."',
            f"Then the {it()} said {info.sound} and smiled.",
        ]
    elif plot == 2:
        lines = [
            f"The {it()} wanted to play with {c.name}.",
            f"They played with {a(obj_kind)} {obj} until the sun went down.",
        ]
        extra = [
            f"{c.name} laughed, and the {it()} said {info.sound}.",
            f"{cap(c.pron)} learned that {info.plural} can {info.can}.",
        ]
    else:
        lines = [
            f"Then it began to rain, and the {it()} was cold.",
            f"{c.name} held {a(obj_kind)} {obj} over the {it()} to keep it dry.",
        ]
        extra = [
            f'"You are a good friend," said the {it()}.',
            f"When the rain stopped, they saw a big rainbow {PLACES[c.place]}.",
        ]
    return lines if short else lines + extra


def _ending(rng: random.Random, c: Cast) -> str:
    def it() -> str:
        return f"{c.color} {c.animal}" if rng.random() < 0.4 else c.animal

    return pick(
        rng,
        f"From that day on, {c.name} and the {it()} were best friends.",
        f"At the end of the day, {c.name} went home with a big smile.",
        f"The {it()} was happy, and so was {c.name}.",
        f"{c.name} and the {c.color} {c.animal} played together every day after that.",
    )


def story(rng: random.Random, c: Cast, short: bool = False) -> str:
    """A story about `c`: short ones (4-5 sentences) are for the card task, long ones for pretraining."""
    lines = _opening(rng, c, short) + [_meeting(rng, c)]
    return " ".join(lines + _problem(rng, c, short) + [_ending(rng, c)])


# --- facts -------------------------------------------------------------------------------------


def fact(rng: random.Random, animal: str) -> str:
    info = ANIMALS[animal]
    return pick(
        rng,
        f"{cap(a(animal))} says {info.sound}.",
        f"{cap(a(animal))} lives {info.home}.",
        f"{cap(info.plural)} like to eat {info.food}.",
        f"{cap(a(animal))} has {info.legs} legs.",
        f"{cap(info.plural)} can {info.can}.",
    )


def facts_doc(rng: random.Random) -> str:
    animal = rng.choice(list(ANIMALS))
    return " ".join(dict.fromkeys(fact(rng, animal) for _ in range(rng.randint(2, 5))))


def record_doc(rng: random.Random) -> str:
    """A fact record as `key: value` lines (YAML), so the base model knows the layout (but has
    never seen a story card)."""
    animal = rng.choice(list(ANIMALS))
    info = ANIMALS[animal]
    rec = {"animal": animal, "sound": info.sound, "food": info.food, "legs": info.legs}
    return "\n".join(f"{k}: {v}" for k, v in rec.items())


# --- chats (the pretraining's instruction data: answers in plain prose) ------------------------


def _reading_question(rng: random.Random, c: Cast, text: str) -> tuple[str, str]:
    """A question about `text` and its answer. Half the answers are short ("It is green."): with
    nothing in the answer pointing at the word, the model must read what the question asks for,
    the skill a story card needs."""
    at = PLACES[c.place]
    q, answers = rng.choice(
        [
            (
                "Who is in this story?",
                [
                    f"The story is about {c.name} and {a(c.color)} {c.animal}.",
                    f"{c.name} and {a(c.color)} {c.animal}.",
                ],
            ),
            ("What is the name of the child?", [f"The child is called {c.name}.", f"It is {c.name}."]),
            ("Where does this story happen?", [f"It happens {at}.", f"{cap(at)}."]),
            (f"What color is the {c.animal}?", [f"The {c.animal} is {c.color}.", f"It is {c.color}."]),
            ("What animal is in this story?", [f"{cap(a(c.color))} {c.animal}.", f"It is {a(c.animal)}."]),
            ("Tell me what happens in one sentence.", [f"{c.name} meets {a(c.color)} {c.animal} {at}."]),
        ]
    )
    return (f"{q}\n\n{text}" if rng.random() < 0.5 else f"{text}\n\n{q}"), rng.choice(answers)


def _repeat(rng: random.Random) -> tuple[str, str]:
    """Word games: repeat, quote, list. Pure copying teaches the model to read its context (without
    it a pretrained model copied only the most repeated word of a story, never names); quoting
    pairs each word with its quoted form, which byte-level BPE makes a different token."""
    pools = [list(NAMES), list(ANIMALS), COLORS, list(PLACES), OBJECTS]
    words = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(3, 8))]
    said = ", ".join(words)
    game = rng.randrange(3)
    if game == 0:
        ask = pick(rng, "Repeat after me:", "Say it back:", "Say these words again:", "Can you say this?")
        return f"{ask} {said}.", f"{said}."
    quoted = ", ".join(f'"{w}"' for w in words)  # the quoted form is a different token: learn the pairing
    if game == 1:
        return f"{pick(rng, 'Put these words in quotes:', 'Quote these words:')} {said}.", quoted
    return (
        f"{pick(rng, 'Write these words as a list:', 'Make a list of these words:')} {said}.",
        f"[{quoted}]",
    )


def chat(rng: random.Random) -> list[dict[str, str]]:
    """One conversation of one or two turns."""
    c = random_cast(rng)
    kind = rng.random()
    if kind < 0.15:
        turns = [_repeat(rng)]
    elif kind < 0.4:
        ask = pick(
            rng,
            f"Tell me a story about {c.name} and {a(c.color)} {c.animal}.",
            f"Can you tell me a story about {a(c.color)} {c.animal} {PLACES[c.place]}?",
            f"Please write a story about {c.name} {PLACES[c.place]}.",
        )
        turns = [(ask, story(rng, c))]
    elif kind < 0.55:
        info = ANIMALS[c.animal]
        turns = [
            rng.choice(
                [
                    (f"What does {a(c.animal)} say?", f"{cap(a(c.animal))} says {info.sound}."),
                    (f"Where does {a(c.animal)} live?", f"{cap(a(c.animal))} lives {info.home}."),
                    (f"What do {info.plural} eat?", f"{cap(info.plural)} like to eat {info.food}."),
                    (f"How many legs does {a(c.animal)} have?", f"{cap(a(c.animal))} has {info.legs} legs."),
                ]
            )
        ]
    else:
        turns = [_reading_question(rng, c, story(rng, c, short=rng.random() < 0.6))]
        if rng.random() < 0.3:  # a follow-up about the same story
            turns.append(
                rng.choice(
                    [
                        ("Who is in it?", f"{c.name} and the {c.animal}."),
                        ("Where is it?", f"{cap(PLACES[c.place])}."),
                        (f"And what color is the {c.animal}?", f"The {c.animal} is {c.color}."),
                    ]
                )
            )
    msgs = []
    for user, assistant in turns:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return msgs


def corpus(rng: random.Random, n_docs: int) -> list[str | list[dict[str, str]]]:
    """Pretraining documents: plain strings, or chats (lists of messages) for the chat template."""
    docs: list[str | list[dict[str, str]]] = []
    for _ in range(n_docs):
        r = rng.random()
        if r < 0.35:
            docs.append(story(rng, random_cast(rng), short=rng.random() < 0.2))
        elif r < 0.42:
            docs.append(facts_doc(rng))
        elif r < 0.45:
            docs.append(record_doc(rng))
        else:
            docs.append(chat(rng))
    return docs


# --- the fine-tuning task: story cards ---------------------------------------------------------

CARD_ASKS = [
    "Make a story card for this story.",
    "Fill in the story card (name, animal, color, place) for this story.",
    "Write the story card for this story.",
    "Story card, please.",
]


def card_text(card: dict[str, str]) -> str:
    """The card as `key: value` lines (valid YAML), the animal as the story says it:

        name: Kate
        animal: white goat
        place: barn

    Not JSON: byte-level BPE gives `"blue"` a token other than the ` blue` of the story. And not a
    `color:` line of its own: the pretrained model copies "white goat" as one phrase (from
    "white" the next word follows), but a bare `animal:` line it filled with a likely animal
    instead of the story's, however long the LoRA run (7% right after 240 steps, vs 100% this way).
    """
    return f"name: {card['name']}\nanimal: {card['color']} {card['animal']}\nplace: {card['place']}"


def card_example(rng: random.Random, c: Cast) -> dict[str, str]:
    """A short story about `c`, the request, the card, and the prose answer a base model would give."""
    text = story(rng, c, short=True)
    ask = rng.choice(CARD_ASKS)
    return {
        "prompt": f"{ask}\n\n{text}",
        "card": card_text(c.card()),
        "prose": f"{c.name} meets {a(c.color)} {c.animal} {PLACES[c.place]}.",
        **c.card(),
    }
