"""Database helpers shared by the apps."""

from django.db import connection
from django.db.models import Window


def update_fields(objects, fields):
    """Save `fields` of many model instances: one UPDATE ... WHERE pk per row, sent as one executemany.

    Django's bulk_update builds a CASE expression per field over every row, which costs seconds
    in Python for a thousand rows; this sends plain parameterised statements (pipelined by
    psycopg 3 on PostgreSQL), with values prepared exactly as the ORM would.
    """
    if not objects:
        return 0
    meta = type(objects[0])._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(f'{quote(c.column)} = %s' for c in columns)} "
        f"WHERE {quote(meta.pk.column)} = %s"
    )
    params = [
        [column.get_db_prep_save(getattr(obj, column.attname), connection) for column in columns] + [obj.pk]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(params)


class GroupedWindow(Window):
    """A window over the groups of an aggregate (values().annotate()) query: a rank by a SUM, or
    COUNT(*) OVER () for the number of groups.

    Django would add the window's expressions, which hold aggregates, to GROUP BY; the window is
    computed after grouping and adds nothing to it.
    """

    def get_group_by_cols(self):
        return []
