#!/usr/bin/env python3
"""Generates keel's "find the code" eval: six bug-fix tasks in one Python project of
~70 files, where the task says what goes wrong but not where.

Each task folder holds the whole project with one bug in it, an `eval.toml` (the
request, `python -m pytest -q` as the check, the tests protected, the file with the bug
as the target: `keel eval` says in how many tasks the agent opened it). The project is the
same for every task: a small shop backend (catalog, orders, billing, logistics,
inventory, accounts, reports, text utilities) whose modules import one another.

Usage: evals/find-the-code/generate.py OUT_DIR   (then `keel eval OUT_DIR`)
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

TASKS = {
    "free-shipping": "Orders of exactly 100.00 are still charged for shipping. Orders of 100 or more must ship free. Find the code responsible and fix it.",
    "vat-rounding": "VAT amounts are rounded down instead of to the nearest cent: 20 % VAT on 0.99 comes out as 0.19, it must be 0.20. Find the code responsible and fix it.",
    "slugs": "Product URLs come out like `hello--world-` for the title `Hello,  World!`; they must be `hello-world` (one dash between words, none at the ends). Find the code responsible and fix it.",
    "overselling": "Customers can reserve more items than are in stock and the stock goes negative. Reserving more than is available must raise OutOfStock and leave the stock as it was. Find the code responsible and fix it.",
    "customer-names": "Invoices show customer names as `LOVELACE ada`; they must read `Ada Lovelace`. Find the code responsible and fix it.",
    "report-days": "A report for a single day says it covers 0 days; start and end days both count. Find the code responsible and fix it.",
}
TASK_FILE = {
    "free-shipping": "shop/logistics/rates.py",
    "vat-rounding": "shop/billing/tax.py",
    "slugs": "shop/text/slug.py",
    "overselling": "shop/inventory/stock.py",
    "customer-names": "shop/accounts/names.py",
    "report-days": "shop/reports/periods.py",
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
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    if out.exists():
        shutil.rmtree(out)
    for task, request in TASKS.items():
        root = out / task
        project(root)
        path = TASK_FILE[task]
        source = (root / path).read_text()
        good, bad = CORE[path][1]
        assert good in source, (task, good)
        (root / path).write_text(source.replace(good, bad))
        protected = ", ".join(f'"{t}"' for t in [*TESTS, "tests/test_catalog.py"])
        write(root / "eval.toml", f'task = """{request}"""\ncheck = "python -m pytest -q"\nprotected = [{protected}]\ntarget = ["{path}"]\n')
    files = sum(1 for p in (out / "free-shipping").rglob("*") if p.is_file())
    print(f"{len(TASKS)} tasks in {out}, {files} files each")


if __name__ == "__main__":
    main()
