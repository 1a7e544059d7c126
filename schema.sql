-- Schema of the Cumulus local database, localdb.sqlite, 0.11.
--
-- The layout of the original program's last release, so that its
-- tools and ours can share one database.  cumulus creates it by
-- itself; by hand: sqlite3 DIR/localdb.sqlite and .read schema.sql
-- All timestamps are UTC Julian day numbers (julianday()).

-- Which layout this database has; checked on every open.
create table schema_version(
    version text,               -- dotted version string
    major integer,
    minor integer
);
insert into schema_version values ('0.11', 0, 11);

-- Snapshots still tracked.  The store may hold more, never fewer:
-- a new snapshot may reuse data of any snapshot listed here.
create table snapshots (
    snapshotid integer primary key,
    name text not null,         -- e.g. 20261126T123430
    scheme text not null,       -- '' when the backup has no scheme
    timestamp datetime          -- when the backup started
);

-- Segments written (or referenced) by some snapshot.
create table segments (
    segmentid integer primary key,
    segment text unique not null,   -- segment UUID
    timestamp datetime,         -- when the segment was written
    path text,                  -- file name in the store
    checksum text,              -- checksum of the stored file
    data_size integer,          -- sum of the sizes of its objects
    disk_size integer,          -- size of the stored file
    type text                   -- metadata, data or compacted-N
);
create unique index segment_name_index on segments(segment);

-- Every object stored in a segment, by content checksum, for
-- block-level de-duplication.  expired is NULL for objects that may
-- be reused; an integer k marks an object of a segment chosen for
-- cleaning (repack group k).
create table block_index (
    blockid integer primary key,
    segmentid integer not null,
    object text not null,       -- sequence number, 8 hex digits
    checksum text,
    size integer,
    timestamp datetime,         -- when this data was first stored
    expired integer
);
create index block_content_index on block_index(checksum);
create unique index block_name_index
    on block_index(segmentid, object);

-- Chunk checksums of an object, for sub-file incrementals.
create table subblock_signatures (
    blockid integer primary key,
    algorithm text not null,    -- e.g. lbfs-4096/sha224
    signatures blob not null    -- (16-bit length, digest) records
);

-- Bytes of each segment that a snapshot references: a lower bound
-- of the live bytes, equal to segments.data_size only if every
-- object is fully used.
create table segment_utilization (
    snapshotid integer not null,
    segmentid integer not null,
    bytes_referenced integer not null
);
create unique index segment_utilization_index
    on segment_utilization(snapshotid, segmentid);
