#!/usr/bin/env python3
"""Generates keel's "find the code" eval: twelve bug-fix tasks in one Python project of
~90 files, where the task says what goes wrong but not where. In the first six the
failing test imports the module with the bug; in the last five of the other six it
imports a module that calls the one with the bug (rates -> zones, totals -> discounts,
signup -> validation, statements -> money, rewards -> points), so the test's file
does not lead straight to it.

Each task folder holds the whole project with one bug in it, an `eval.toml` (the
request, `python -m pytest -q` as the check, the tests protected, the file with the bug
as the target: `keel eval` says in how many tasks the agent opened it). The project is the
same for every task: a small shop backend (catalog, orders, billing, logistics,
inventory, accounts, reports, text utilities) whose modules import one another.

Usage: evals/find-the-code/generate.py OUT_DIR [TASK…]   (then `keel eval OUT_DIR`)
"""

import shutil
import sys
import textwrap
from pathlib import Path

# The modules the tasks are about: correct source, and the bug each task puts in.
CORE = {
    "shop/logistics/rates.py": (
        '''
        """Shipping rates."""

        from shop.logistics.zones import zone_factor

        FREE_SHIPPING_FROM = 100.0
        BASE_RATE = 4.90
        PER_KG = 1.20


        def shipping_cost(subtotal, weight_kg, zone="domestic"):
            """What shipping costs for an order: free from FREE_SHIPPING_FROM on."""
            if subtotal >= FREE_SHIPPING_FROM:
                return 0.0
            return round((BASE_RATE + PER_KG * weight_kg) * zone_factor(zone), 2)
        ''',
        ("subtotal >= FREE_SHIPPING_FROM", "subtotal > FREE_SHIPPING_FROM"),
    ),
    "shop/billing/tax.py": (
        '''
        """Value added tax."""


        def vat(amount, rate):
            """The VAT on `amount` at `rate` (0.2 for 20 %), rounded to the cent."""
            return round(amount * rate + 1e-9, 2)


        def gross(amount, rate):
            """`amount` with its VAT."""
            return round(amount + vat(amount, rate), 2)
        ''',
        ("return round(amount * rate + 1e-9, 2)", "return int(amount * rate * 100) / 100"),
    ),
    "shop/text/slug.py": (
        '''
        """URL slugs for product and category titles."""

        import re


        def slugify(title):
            """`Hello,  World!` -> `hello-world`: lower case, runs of other characters
            become one dash, none at either end."""
            return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        ''',
        ('return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")',
         'return re.sub(r"[^a-z0-9]", "-", title.lower())'),
    ),
    "shop/inventory/stock.py": (
        '''
        """Stock levels and reservations."""


        class OutOfStock(Exception):
            """More was asked for than there is."""


        def available(stock, sku):
            return stock.get(sku, 0)


        def reserve(stock, sku, quantity):
            """Takes `quantity` of `sku` out of `stock`; raises OutOfStock when there is
            not enough (and then changes nothing)."""
            if quantity > available(stock, sku):
                raise OutOfStock(f"{sku}: {quantity} asked, {available(stock, sku)} left")
            stock[sku] = available(stock, sku) - quantity
            return stock[sku]
        ''',
        ('    if quantity > available(stock, sku):\n        raise OutOfStock(f"{sku}: {quantity} asked, {available(stock, sku)} left")\n', ''),
    ),
    "shop/accounts/names.py": (
        '''
        """How customers are named on screen and on invoices."""


        def display_name(first, last):
            """`ada`, `LOVELACE` -> `Ada Lovelace`."""
            return f"{first.strip().capitalize()} {last.strip().capitalize()}"


        def initials(first, last):
            return f"{first.strip()[:1].upper()}{last.strip()[:1].upper()}"
        ''',
        ('return f"{first.strip().capitalize()} {last.strip().capitalize()}"',
         'return f"{last.strip()} {first.strip()}"'),
    ),
    "shop/reports/periods.py": (
        '''
        """Report periods."""

        from datetime import timedelta


        def days_between(start, end):
            """How many days a report from `start` to `end` covers, both included."""
            return (end - start).days + 1


        def each_day(start, end):
            return [start + timedelta(days=i) for i in range(days_between(start, end))]
        ''',
        ("return (end - start).days + 1", "return (end - start).days"),
    ),
    # Generated with the rest of the shop (see filler_module); the bug is put in the same way.
    "shop/logistics/zones.py": (None, ('"eu": 1.6', '"eu": 6.1')),
    "shop/orders/discounts.py": (
        '''
        """Discount codes."""

        CODES = {"SAVE10": 0.10, "HALF": 0.50}


        def discounted(total, code):
            """`total` less the discount `code` gives (none for an unknown code)."""
            share = CODES.get(code, 0.0)
            return round(total * (1 - share), 2)
        ''',
        ("return round(total * (1 - share), 2)", "return round(total - share, 2)"),
    ),
    "shop/orders/totals.py": (
        '''
        """What an order costs."""

        from shop.orders.discounts import discounted


        def order_total(prices, code=None):
            """The sum of `prices`, less the discount of `code`."""
            return discounted(sum(prices), code)
        ''',
        None,
    ),
    "shop/accounts/validation.py": (
        '''
        """Rules for what customers type in."""

        MIN_PASSWORD_LENGTH = 8


        def strong_enough(password):
            """At least MIN_PASSWORD_LENGTH characters, one of them a digit."""
            long_enough = len(password) >= MIN_PASSWORD_LENGTH
            return long_enough and any(c.isdigit() for c in password)
        ''',
        ("len(password) >= MIN_PASSWORD_LENGTH", "len(password) > MIN_PASSWORD_LENGTH"),
    ),
    "shop/accounts/signup.py": (
        '''
        """Signing up."""

        from shop.accounts.validation import strong_enough


        class WeakPassword(ValueError):
            """The password does not follow the rules."""


        def register(users, email, password):
            if not strong_enough(password):
                raise WeakPassword(email)
            users[email] = {"email": email}
            return users[email]
        ''',
        None,
    ),
    "shop/billing/money.py": (
        '''
        """Amounts of money, kept in cents."""


        def format_money(cents):
            """505 -> `5.05`."""
            return f"{cents // 100}.{cents % 100:02d}"
        ''',
        ('return f"{cents // 100}.{cents % 100:02d}"', 'return f"{cents // 100}.{cents % 100}"'),
    ),
    "shop/billing/statements.py": (
        '''
        """Lines of a customer's statement."""

        from shop.billing.money import format_money


        def statement_line(label, cents):
            return f"{label}: {format_money(cents)} EUR"
        ''',
        None,
    ),
    "shop/catalog/ratings.py": (
        '''
        """Star ratings."""


        def average(stars):
            """The mean of `stars` to one decimal; 0.0 with no ratings."""
            if not stars:
                return 0.0
            return round(sum(stars) / len(stars), 1)
        ''',
        ("return round(sum(stars) / len(stars), 1)", "return float(sum(stars) // len(stars))"),
    ),
    "shop/accounts/points.py": (
        '''
        """Loyalty points."""

        SPEND_PER_POINT = 10


        def points_for(amount):
            """One point for each full SPEND_PER_POINT spent."""
            return int(amount // SPEND_PER_POINT)
        ''',
        ("return int(amount // SPEND_PER_POINT)", "return int(amount // (SPEND_PER_POINT * 10))"),
    ),
    "shop/orders/rewards.py": (
        '''
        """What an order earns."""

        from shop.accounts.points import points_for


        def reward_summary(amount):
            points = points_for(amount)
            return f"{points} point" if points == 1 else f"{points} points"
        ''',
        None,
    ),
}

TESTS = {
    "tests/test_shipping.py": '''
        from shop.logistics.rates import shipping_cost


        def test_small_orders_pay_by_weight():
            assert shipping_cost(20.0, 2.0) == 7.3


        def test_orders_from_100_ship_free():
            assert shipping_cost(100.0, 2.0) == 0.0
            assert shipping_cost(250.0, 9.0) == 0.0
        ''',
    "tests/test_tax.py": '''
        from shop.billing.tax import gross, vat


        def test_vat_rounds_to_the_nearest_cent():
            assert vat(0.99, 0.2) == 0.2
            assert vat(10.0, 0.2) == 2.0


        def test_gross():
            assert gross(10.0, 0.2) == 12.0
        ''',
    "tests/test_slug.py": '''
        from shop.text.slug import slugify


        def test_slugs():
            assert slugify("Hello,  World!") == "hello-world"
            assert slugify("  Red / Blue Mugs ") == "red-blue-mugs"
        ''',
    "tests/test_stock.py": '''
        import pytest

        from shop.inventory.stock import OutOfStock, reserve


        def test_reserve_takes_from_stock():
            stock = {"mug": 5}
            assert reserve(stock, "mug", 2) == 3


        def test_cannot_reserve_more_than_there_is():
            stock = {"mug": 1}
            with pytest.raises(OutOfStock):
                reserve(stock, "mug", 2)
            assert stock == {"mug": 1}
        ''',
    "tests/test_names.py": '''
        from shop.accounts.names import display_name, initials


        def test_display_name():
            assert display_name("ada", "LOVELACE") == "Ada Lovelace"


        def test_initials():
            assert initials("ada", "lovelace") == "AL"
        ''',
    "tests/test_periods.py": '''
        from datetime import date

        from shop.reports.periods import days_between, each_day


        def test_a_one_day_report_covers_one_day():
            assert days_between(date(2024, 1, 1), date(2024, 1, 1)) == 1
            assert days_between(date(2024, 1, 1), date(2024, 1, 31)) == 31


        def test_each_day():
            assert len(each_day(date(2024, 2, 1), date(2024, 2, 29))) == 29
        ''',
}

TESTS.update({
    "tests/test_zones.py": '''
        from shop.logistics.rates import shipping_cost


        def test_shipping_abroad_costs_more_by_zone():
            assert shipping_cost(20.0, 2.0, "eu") == 11.68
            assert shipping_cost(20.0, 2.0, "world") == 20.44
        ''',
    "tests/test_totals.py": '''
        from shop.orders.totals import order_total


        def test_totals():
            assert order_total([10.0, 5.0]) == 15.0
            assert order_total([10.0, 5.0], "SAVE10") == 13.5
            assert order_total([10.0], "HALF") == 5.0
        ''',
    "tests/test_signup.py": '''
        import pytest

        from shop.accounts.signup import WeakPassword, register


        def test_eight_characters_with_a_digit_are_enough():
            users = {}
            register(users, "ada@example.com", "abcdefg1")
            assert "ada@example.com" in users


        def test_short_passwords_are_refused():
            with pytest.raises(WeakPassword):
                register({}, "ada@example.com", "abc1")
        ''',
    "tests/test_statements.py": '''
        from shop.billing.statements import statement_line


        def test_statement_lines_show_cents():
            assert statement_line("Mug", 505) == "Mug: 5.05 EUR"
            assert statement_line("Pen", 1250) == "Pen: 12.50 EUR"
        ''',
    "tests/test_ratings.py": '''
        from shop.catalog.ratings import average


        def test_average_keeps_halves():
            assert average([4, 5]) == 4.5
            assert average([]) == 0.0
        ''',
    "tests/test_rewards.py": '''
        from shop.orders.rewards import reward_summary


        def test_one_point_per_ten_spent():
            assert reward_summary(250.0) == "25 points"
            assert reward_summary(12.0) == "1 point"
        ''',
})

TASKS = {
    "free-shipping": "Orders of exactly 100.00 are still charged for shipping. Orders of 100 or more must ship free. Find the code responsible and fix it.",
    "vat-rounding": "VAT amounts are rounded down instead of to the nearest cent: 20 % VAT on 0.99 comes out as 0.19, it must be 0.20. Find the code responsible and fix it.",
    "slugs": "Product URLs come out like `hello--world-` for the title `Hello,  World!`; they must be `hello-world` (one dash between words, none at the ends). Find the code responsible and fix it.",
    "overselling": "Customers can reserve more items than are in stock and the stock goes negative. Reserving more than is available must raise OutOfStock and leave the stock as it was. Find the code responsible and fix it.",
    "customer-names": "Invoices show customer names as `LOVELACE ada`; they must read `Ada Lovelace`. Find the code responsible and fix it.",
    "report-days": "A report for a single day says it covers 0 days; start and end days both count. Find the code responsible and fix it.",
    "eu-shipping": "Shipping to the EU costs far too much: 2 kg to the EU on a 20.00 order should cost 11.68 and comes out as 44.53. Find the code responsible and fix it.",
    "discount-codes": "Discount codes take off cents instead of a share: SAVE10 on an order of 15.00 gives 14.90; it must give 13.50 (10 % off). Find the code responsible and fix it.",
    "password-rules": "Signing up with an 8-character password that has a digit, like `abcdefg1`, is refused as too weak; 8 characters must be enough. Find the code responsible and fix it.",
    "statement-cents": "Customer statements print 5.05 EUR as `5.5 EUR`. Find the code responsible and fix it.",
    "half-stars": "Product ratings lose their halves: reviews of 4 and 5 stars average 4.0 instead of 4.5. Find the code responsible and fix it.",
    "loyalty-points": "Customers earn one loyalty point per 100.00 spent instead of one per 10.00: an order of 250.00 earns 2 points, it must earn 25. Find the code responsible and fix it.",
}
TASK_FILE = {
    "free-shipping": "shop/logistics/rates.py",
    "vat-rounding": "shop/billing/tax.py",
    "slugs": "shop/text/slug.py",
    "overselling": "shop/inventory/stock.py",
    "customer-names": "shop/accounts/names.py",
    "report-days": "shop/reports/periods.py",
    "eu-shipping": "shop/logistics/zones.py",
    "discount-codes": "shop/orders/discounts.py",
    "password-rules": "shop/accounts/validation.py",
    "statement-cents": "shop/billing/money.py",
    "half-stars": "shop/catalog/ratings.py",
    "loyalty-points": "shop/accounts/points.py",
}

# The rest of the shop: packages and the modules in them, each with a few functions
# that use their neighbours.
FILLER = {
    "catalog": ["products", "categories", "search", "images", "reviews", "pricing", "bundles", "variants"],
    "orders": ["cart", "checkout", "returns", "history", "coupons", "gift_cards", "wishlist", "status"],
    "billing": ["invoices", "payments", "refunds", "currency", "receipts", "ledger"],
    "logistics": ["zones", "carriers", "tracking", "packaging", "labels", "pickup"],
    "inventory": ["warehouses", "suppliers", "restock", "audit", "locations"],
    "accounts": ["users", "addresses", "sessions", "preferences", "loyalty", "passwords"],
    "reports": ["sales", "traffic", "export", "charts", "taxes_due"],
    "text": ["markdown", "emails", "templates", "sanitize"],
    "notify": ["mailer", "sms", "push", "queue"],
}


def filler_module(package, name, neighbour):
    """A module of three small functions, one of them using a neighbour module."""
    words = name.split("_")
    noun = words[-1].rstrip("s") or name
    if name == "zones":
        return textwrap.dedent('''
            """Shipping zones."""

            FACTORS = {"domestic": 1.0, "eu": 1.6, "world": 2.8}


            def zone_factor(zone):
                """How much more shipping to `zone` costs than domestic shipping."""
                return FACTORS.get(zone, FACTORS["world"])


            def zones():
                return sorted(FACTORS)
            ''').lstrip()
    if neighbour is None:
        header, used = "", "str"
    else:
        other_package, other_name = neighbour
        other_noun = other_name.split("_")[-1].rstrip("s") or other_name
        header = f"from shop.{other_package}.{other_name} import describe_{other_noun}\n"
        used = f"describe_{other_noun}"
    return textwrap.dedent(f'''
        """{package.capitalize()}: {name.replace("_", " ")}."""

        {header}


        class {noun.capitalize()}Record:
            """One {noun} as the shop stores it."""

            def __init__(self, key, **fields):
                self.key = key
                self.fields = fields

            def summary(self):
                return f"{noun} {{self.key}}: {{len(self.fields)}} fields"


        def load_{noun}(store, key):
            """The {noun} stored under `key`, or None."""
            data = store.get(("{noun}", key))
            return {noun.capitalize()}Record(key, **data) if data is not None else None


        def save_{noun}(store, record):
            store[("{noun}", record.key)] = dict(record.fields)
            return record.key


        def describe_{noun}(record):
            """A one-line description of a {noun} for logs."""
            return f"{{record.summary()}} ({{{used}.__name__}})"
        ''').lstrip()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def project(root):
    modules = [(p, m) for p, names in FILLER.items() for m in names]
    for i, (package, name) in enumerate(modules):
        # Only modules listed earlier: the imports form no cycle.
        neighbour = modules[(i * 7 + 3) % i] if i else None
        if neighbour is not None and neighbour[1] == "zones":
            neighbour = modules[0]
        write(root / "shop" / package / f"{name}.py", filler_module(package, name, neighbour))
    for package in FILLER:
        write(root / "shop" / package / "__init__.py", "")
    write(root / "shop" / "__init__.py", '"""A small shop backend."""\n')
    for path, (source, _) in CORE.items():
        if source is not None:
            write(root / path, textwrap.dedent(source).lstrip())
    for path, source in TESTS.items():
        write(root / path, textwrap.dedent(source).lstrip())
    write(root / "tests" / "test_catalog.py", textwrap.dedent('''
        from shop.catalog.products import ProductRecord, load_product, save_product


        def test_products_round_trip():
            store = {}
            save_product(store, ProductRecord("mug", colour="red"))
            assert load_product(store, "mug").fields == {"colour": "red"}
        ''').lstrip())
    write(root / "pyproject.toml", '[project]\nname = "shop"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\npythonpath = ["."]\n')
    write(root / "README.md", "# shop\n\nA small shop backend: catalog, orders, billing, logistics, inventory, accounts, reports.\n\nRun the tests with `python -m pytest -q`.\n")


def main():
    if len(sys.argv) < 2 or any(t not in TASKS for t in sys.argv[2:]):
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    chosen = sys.argv[2:] or list(TASKS)
    if out.exists():
        shutil.rmtree(out)
    for task in chosen:
        request = TASKS[task]
        root = out / task
        project(root)
        path = TASK_FILE[task]
        source = (root / path).read_text()
        good, bad = CORE[path][1]
        assert good in source, (task, good)
        (root / path).write_text(source.replace(good, bad))
        protected = ", ".join(f'"{t}"' for t in [*TESTS, "tests/test_catalog.py"])
        write(root / "eval.toml", f'task = """{request}"""\ncheck = "python -m pytest -q"\nprotected = [{protected}]\ntarget = ["{path}"]\n')
    files = sum(1 for p in (out / chosen[0]).rglob("*") if p.is_file())
    print(f"{len(chosen)} tasks in {out}, {files} files each")


if __name__ == "__main__":
    main()
