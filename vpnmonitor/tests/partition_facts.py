"""What the catalogue says of a partitioned table, for the partition tests of the apps that have one."""

from django.db import connection


def table_facts(table):
    """(relkind, primary key columns, index names of the table itself, identity sequence) of a table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        kind = cursor.fetchone()[0]
        cursor.execute(
            "SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid "
            "AND a.attnum = ANY(x.indkey) WHERE x.indrelid = %s::regclass AND x.indisprimary "
            "ORDER BY array_position(x.indkey::int2[], a.attnum)", [table])
        key = [name for (name,) in cursor.fetchall()]
        cursor.execute("SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                       "WHERE x.indrelid = %s::regclass ORDER BY 1", [table])
        indexes = [name for (name,) in cursor.fetchall()]
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return kind, key, indexes, cursor.fetchone()[0]
