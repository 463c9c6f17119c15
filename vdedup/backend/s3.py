"""S3 backend (backend layer): the local layout under `s3://bucket/prefix`.

Objects: `PREFIX/config`, `PREFIX/keys/NAME`, `PREFIX/data/XY/NAME`, ... exactly as on disk.
Credentials, region and profile come from boto3's usual chain (environment, shared config
and credentials files, SSO, instance or container roles); an endpoint URL selects an
S3-compatible store. boto3 is imported on first use (pip extra `vdedup[s3]`).

Never overwriting is enforced by the store, not by a check-then-write: every save is a
conditional create (`If-None-Match: *`, on PutObject or on CompleteMultipartUpload for
large objects), which S3 refuses with 412 when the key exists, so of two writers racing
for one name exactly one wins. Errors are told apart for the retry wrapper: not found,
exists, transient (throttling, 5xx, timeouts, dropped connections) and permanent.
botocore's own retries are switched off: `retry.RetryBackend` is the one retry policy.
"""
from __future__ import annotations

import datetime as dt
import os
from typing import Any, Iterator

from ..errors import (BackendError, MissingDependency, ObjectExists, ObjectNotFound, RetentionActive,
                      TransientBackendError, UsageError, WriteRefused)
from .base import FileType

MULTIPART_THRESHOLD = 8 << 20     # objects larger than this go up in parts
# with Object Lock, what is saved with a retention: everything a backup needs and the audit
# log; not locks (removed on release) and not assets (replaced by `assets rotate`)
RETAINED_TYPES = (FileType.CONFIG, FileType.KEYS, FileType.KEYLIST, FileType.SNAPSHOTS,
                  FileType.INDEX, FileType.DATA, FileType.AUDIT)
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
PART_SIZE = 8 << 20               # S3's minimum part size is 5 MiB (except the last part)
MIN_PART_SIZE = 5 << 20

_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled",
                    "RequestTimeout", "RequestTimeoutException", "InternalError",
                    "ServiceUnavailable", "RequestLimitExceeded", "BandwidthLimitExceeded",
                    "ConditionalRequestConflict", "OperationAborted", "TooManyRequestsException"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class NoSuchBucket(BackendError):
    """The bucket does not exist: no repository can be there (init creates it)."""


def parse_s3_url(location: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without surrounding slashes)."""
    if not location.startswith("s3://"):
        raise UsageError(f"not an S3 location: {location.split('://')[0]}://")
    rest = location[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise UsageError("an s3:// location holds no credentials or port: give credentials through "
                         "the AWS environment or config files, and an endpoint with --s3-endpoint")
    if not bucket:
        raise UsageError("an s3:// location needs a bucket: s3://BUCKET[/PREFIX]")
    prefix = prefix.strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise UsageError(f"bad prefix in s3://{bucket}/{prefix}: empty, '.' or '..' parts")
    return bucket, prefix


def _boto():
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise MissingDependency("the S3 backend needs boto3: pip install 'vdedup[s3]'") from None
    return boto3, botocore


class S3Backend:
    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None, *,
                 client: Any = None, multipart_threshold: int = MULTIPART_THRESHOLD,
                 part_size: int = PART_SIZE, list_page_size: int = 1000):
        if part_size < MIN_PART_SIZE:
            raise ValueError("part_size must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.list_page_size = list_page_size
        self._client = client
        self.object_lock: tuple[str, float] | None = None     # (mode, retention seconds)
        _, botocore = _boto()
        self._exc = botocore.exceptions

    @classmethod
    def from_url(cls, location: str, endpoint: str | None = None, **kw: Any) -> "S3Backend":
        bucket, prefix = parse_s3_url(location)
        return cls(bucket, prefix, endpoint, **kw)

    # ---- client and errors --------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            boto3, botocore = _boto()
            s3cfg = {"addressing_style": "path"} if self.endpoint else {}
            cfg = botocore.config.Config(
                retries={"total_max_attempts": 1, "mode": "standard"},   # RetryBackend retries
                connect_timeout=float(os.environ.get("VDEDUP_S3_CONNECT_TIMEOUT", "10")),
                read_timeout=float(os.environ.get("VDEDUP_S3_READ_TIMEOUT", "60")),
                max_pool_connections=16, s3=s3cfg)
            try:
                session = boto3.session.Session()
                self._client = session.client("s3", endpoint_url=self.endpoint, config=cfg)
            except self._exc.BotoCoreError as e:
                raise BackendError(f"cannot set up the S3 client for {self.location}: {_one_line(e)}") from None
            except ValueError as e:      # e.g. a malformed endpoint URL
                raise UsageError(f"bad S3 endpoint: {_one_line(e)}") from None
        return self._client

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _error(self, e: Exception, op: str, key: str) -> BackendError:
        """The vdedup error for a boto error; messages name the bucket and key, never credentials."""
        where = self._where(key)
        exc = self._exc
        if isinstance(e, exc.ClientError):
            err = e.response.get("Error", {}) or {}
            code = str(err.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == "NoSuchBucket":
                return NoSuchBucket(f"{op} {where}: the bucket {self.bucket} does not exist")
            if code in _NOT_FOUND_CODES or status == 404:
                return ObjectNotFound(f"{where} not found")
            if code == "PreconditionFailed" or status == 412:
                return ObjectExists(f"{where} already exists")
            if code in _TRANSIENT_CODES or status in (408, 429) or (status >= 500 and status != 501):
                return TransientBackendError(f"{op} {where}: {code or status} (transient)")
            if op in ("write", "remove") and (code in ("AccessDenied", "AllAccessDisabled") or status == 403):
                return WriteRefused(f"{op} {where}: {code or status} (the store refuses writes)")
            return BackendError(f"{op} {where}: {code or 'HTTP ' + str(status)}"
                                + (f" ({status})" if status else ""))
        if isinstance(e, (exc.NoCredentialsError, exc.PartialCredentialsError)):
            return BackendError(f"{op} {where}: no S3 credentials found (set them as for the AWS CLI: "
                                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role)")
        if isinstance(e, (exc.ConnectionError, exc.HTTPClientError, exc.ReadTimeoutError,
                          exc.ResponseStreamingError, exc.IncompleteReadError,
                          exc.FlexibleChecksumError)):   # corrupted in transit: try again
            return TransientBackendError(f"{op} {where}: {type(e).__name__} (transient)")
        if isinstance(e, exc.BotoCoreError):
            return BackendError(f"{op} {where}: {type(e).__name__}")
        if isinstance(e, OSError):       # a connection dropped while reading a body
            return TransientBackendError(f"{op} {where}: {type(e).__name__} (transient)")
        return BackendError(f"{op} {where}: {type(e).__name__}")

    def _call(self, op: str, key: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except (self._exc.ClientError, self._exc.BotoCoreError, OSError) as e:
            raise self._error(e, op, key) from None

    # ---- names --------------------------------------------------------------------------
    def _dir(self, ftype: str) -> str:
        return f"{self.prefix}/{ftype}/" if self.prefix else f"{ftype}/"

    def _key(self, ftype: str, name: str) -> str:
        if ftype == FileType.CONFIG:
            return f"{self.prefix}/config" if self.prefix else "config"
        if ftype not in FileType.ALL:
            raise BackendError(f"unknown object type {ftype!r}")
        if not name or "/" in name or name.startswith("."):
            raise BackendError(f"bad object name {name!r}")
        if ftype == FileType.DATA:
            return f"{self._dir(ftype)}{name[:2]}/{name}"
        return f"{self._dir(ftype)}{name}"

    # ---- the backend interface ------------------------------------------------------------
    def exists(self) -> bool:
        key = self._key(FileType.CONFIG, "config")
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except (self._exc.ClientError, self._exc.BotoCoreError, OSError) as e:
            err = self._error(e, "read", key)
            if isinstance(err, (ObjectNotFound, NoSuchBucket)):
                return False
            raise err from None

    def create_layout(self) -> None:
        """Create the bucket if it is missing (S3 has no directories to make)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except self._exc.ClientError as e:
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status != 404:
                if status == 403:
                    return      # it exists, we may not list it; writes will tell
                raise self._error(e, "check bucket", "") from None
        except (self._exc.BotoCoreError, OSError) as e:
            raise self._error(e, "check bucket", "") from None
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except self._exc.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou",):
                return
            err = self._error(e, "create bucket", "")
            raise type(err)(f"cannot create the bucket {self.bucket}: "
                            f"{e.response.get('Error', {}).get('Code', 'error')}") from None
        except (self._exc.BotoCoreError, OSError) as e:
            raise self._error(e, "create bucket", "") from None

    # ---- Object Lock ----------------------------------------------------------------------
    def enable_object_lock(self, mode: str, days: int) -> None:
        """At init: a bucket with Object Lock (created so if missing; an existing one must
        have it), and every later save of RETAINED_TYPES gets a retention of `days`."""
        if mode not in LOCK_MODES:
            raise UsageError(f"object lock mode {mode!r}: one of governance, compliance")
        try:
            self.client.head_bucket(Bucket=self.bucket)
            exists = True
        except self._exc.ClientError as e:
            if int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) != 404:
                raise self._error(e, "check bucket", "") from None
            exists = False
        except (self._exc.BotoCoreError, OSError) as e:
            raise self._error(e, "check bucket", "") from None
        if not exists:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
            region = self.client.meta.region_name
            if region and region not in ("us-east-1", "aws-global"):
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self._call("create bucket", "", self.client.create_bucket, **kwargs)
        else:
            try:
                cfg = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = cfg.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except self._exc.ClientError:
                enabled = False
            if not enabled:
                raise UsageError(f"the bucket {self.bucket} exists without Object Lock: use a new bucket "
                                 f"(vdedup creates it with Object Lock), or enable Object Lock on this one first")
        self.configure_object_lock(mode, days)

    def configure_object_lock(self, mode: str, days: float) -> None:
        """Retention for the saves of this session (the repository's config says it)."""
        seconds = float(days) * 86400
        test = os.environ.get("VDEDUP_TEST_RETENTION_SECONDS")
        if test:                      # test suites only: retention short enough to expire
            seconds = float(test)
        self.object_lock = (mode, seconds)

    def _retention(self, ftype: str) -> dict[str, Any]:
        if self.object_lock is None or ftype not in RETAINED_TYPES:
            return {}
        mode, seconds = self.object_lock
        until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
        return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until}

    def retained_until(self, ftype: str, name: str) -> dt.datetime | None:
        """When the retention of an object ends, if it has one that has not ended."""
        key = self._key(ftype, name)
        r = self._call("read", key, self.client.head_object, Bucket=self.bucket, Key=key)
        return _until(r)

    def save(self, ftype: str, name: str, data: bytes) -> None:
        key = self._key(ftype, name)
        lock = self._retention(ftype)
        if len(data) > self.multipart_threshold:
            self._save_multipart(key, data, lock)
            return
        self._call("write", key, self.client.put_object, Bucket=self.bucket, Key=key,
                   Body=bytes(data), IfNoneMatch="*", **lock)

    def _refuse_existing(self, key: str) -> None:
        """A cheap early refusal before uploading parts; the conditional completion is what
        actually guarantees that nothing is overwritten."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except (self._exc.ClientError, self._exc.BotoCoreError, OSError) as e:
            err = self._error(e, "write", key)
            if isinstance(err, ObjectNotFound):
                return
            raise err from None
        raise ObjectExists(f"{self._where(key)} already exists")

    def _save_multipart(self, key: str, data: bytes, lock: dict[str, Any]) -> None:
        self._refuse_existing(key)
        up = self._call("write", key, self.client.create_multipart_upload, Bucket=self.bucket, Key=key, **lock)
        upload_id = up["UploadId"]
        view = memoryview(data)
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), self.part_size), start=1):
                chunk = bytes(view[start:start + self.part_size])
                r = self._call("write", key, self.client.upload_part, Bucket=self.bucket, Key=key,
                               UploadId=upload_id, PartNumber=number, Body=chunk)
                part = {"PartNumber": number, "ETag": r["ETag"]}
                for ck in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256",
                           "ChecksumCRC64NVME"):
                    if r.get(ck):
                        part[ck] = r[ck]
                parts.append(part)
            done = self._call("write", key, self.client.complete_multipart_upload, Bucket=self.bucket,
                              Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*")
            if lock:          # stores that ignore the retention of a multipart upload get it now
                kw: dict[str, Any] = {"VersionId": done["VersionId"]} if done.get("VersionId") else {}
                self._call("write", key, self.client.put_object_retention, Bucket=self.bucket, Key=key,
                           Retention={"Mode": lock["ObjectLockMode"],
                                      "RetainUntilDate": lock["ObjectLockRetainUntilDate"]}, **kw)
        except BaseException:
            try:   # leave no billable orphaned parts behind
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:
                pass
            raise

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(ftype, name)
        if length is not None and length <= 0:
            self.stat(ftype, name)           # still say whether it exists
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset < 0:
            kwargs["Range"] = f"bytes=-{-offset}"          # the last -offset bytes
        elif length is not None:
            kwargs["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset > 0:
            kwargs["Range"] = f"bytes={offset}-"
        try:
            r = self.client.get_object(**kwargs)
            data = r["Body"].read()
        except (self._exc.ClientError, self._exc.BotoCoreError, OSError) as e:
            if isinstance(e, self._exc.ClientError) and e.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""                   # a range past the end, as a file read gives
            raise self._error(e, "read", key) from None
        if offset < 0 and length is not None:
            data = data[:length]
        return data

    def stat(self, ftype: str, name: str) -> int:
        key = self._key(ftype, name)
        r = self._call("read", key, self.client.head_object, Bucket=self.bucket, Key=key)
        return int(r["ContentLength"])

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        """(name, size) in name order (S3 lists keys in UTF-8 byte order)."""
        if ftype == FileType.CONFIG:
            return
        prefix = self._dir(ftype)
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self.list_page_size}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self.client.list_objects_v2(**kwargs)
            except (self._exc.ClientError, self._exc.BotoCoreError, OSError) as e:
                err = self._error(e, "list", prefix)
                if isinstance(err, NoSuchBucket):
                    return                  # nothing there; exists() says so too
                raise err from None
            for obj in page.get("Contents", []) or []:
                rest = obj["Key"][len(prefix):]
                parts = rest.split("/")
                if ftype == FileType.DATA:
                    if len(parts) != 2:
                        continue
                elif len(parts) != 1:
                    continue
                name = parts[-1]
                if name and not name.startswith("."):
                    yield name, int(obj["Size"])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def remove(self, ftype: str, name: str) -> None:
        """S3's DeleteObject succeeds for a missing key; a HEAD first keeps ObjectNotFound.
        With Object Lock (a versioned bucket) the version itself is deleted, for good: a plain
        delete would only hide it behind a delete marker. A version under retention cannot be
        deleted: RetentionActive says until when (vdedup never bypasses a retention)."""
        key = self._key(ftype, name)
        head = self._call("read", key, self.client.head_object, Bucket=self.bucket, Key=key)
        if self.object_lock is None:
            self._call("remove", key, self.client.delete_object, Bucket=self.bucket, Key=key)
            return
        until = _until(head)
        if until is not None:
            raise RetentionActive(f"{ftype}/{name[:16]} is under retention until "
                                  f"{until.isoformat(timespec='seconds')} (Object Lock)", until=until)
        kw = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        try:
            self._call("remove", key, self.client.delete_object, Bucket=self.bucket, Key=key, **kw)
        except WriteRefused as e:            # retention set by someone else, or a legal hold
            raise RetentionActive(f"{ftype}/{name[:16]} cannot be removed: {e.message}") from None


def _until(head: dict[str, Any]) -> dt.datetime | None:
    """The end of an object's retention from a HEAD response, if it is still in the future."""
    until = head.get("ObjectLockRetainUntilDate")
    if isinstance(until, str):
        until = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
    if until is None:
        return None
    if until.tzinfo is None:
        until = until.replace(tzinfo=dt.timezone.utc)
    return until if until > dt.datetime.now(dt.timezone.utc) else None


def _one_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
