# ruff: noqa: E501 -- the corpus holds real error texts whole, one per line
"""A red-team corpus of real SDK error formats with planted names and secrets.

Written from the message formats of botocore and S3 XML bodies, google-api-core and
google-cloud-storage, azure-core and azure-storage, paramiko and OpenSSH, OSError
strerrors, urllib3 and requests, and Skyplane 0.3.2's own raise sites, independently
of ``tests/scrub_corpus``. Each template is filled from several "worlds" of planted
values, so every template is tried with names of many shapes.

A template is ``(text, facts)``: ``{field}`` marks a planted value, ``facts`` are the
benign things (type names, error codes, regions, statuses, flag values) a reader of
the payload needs and that must survive.
"""

from __future__ import annotations

import string

# Planted values, by role. None of them is a vocabulary word (the word-named buckets
# are measured apart, in WORD_NAMES). Each world fills every field.
WORLDS: list[dict[str, str]] = [
    {
        "bucket": "acme-payroll-prod",
        "obj": "exports/q3/zentrix_salaries.parquet",
        "key": "zentrix-ledger-2024",
        "name": "Kestrelwyn",
        "user": "jdoe42",
        "person": "Okonkwo",
        "fullname": "Bob Okonkwo",
        "host": "minio-quorra",
        "hostport": "minio-quorra:9000",
        "nodot": "db-krell01",
        "dotted": "krell.intra.zorvex",
        "acct": "123456789012",
        "akid": "AKIAIOSFODNN7EXAMPLE",
        "secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "sas": "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2024-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig=Zq8vK3mQ%2FpX7rT9wLn2bYc4dE6fGhJ1kM5oP0sUvW%3D",
        "jwt": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqZG9lNDIiLCJhdWQiOiJ6b3J2ZXgifQ.c2lnbmF0dXJlX3pvcnZleA",
        "gproj": "zorvex-analytics-381204",
        "azacct": "zorvexstore01",
        "container": "qorvana-raw",
        "guid": "3f2b8c1e-9a7d-4e21-b6c3-7d8e9f0a1b2c",
        "email": "jane.quist@zorvex.com",
        "ip4": "10.24.117.9",
        "ip6": "2001:db8:85a3::8a2e:370:7334",
        "arn": "arn:aws:iam::123456789012:role/zorvex-admin",
        "path": "/home/jquist/zorvex/keys/id_rsa",
        "wpath": "C:\\Users\\Bob Okonkwo\\Documents\\payroll.xlsx",
        "unc": "\\\\fileserv01\\finance\\q3",
        "password": "Hq7!vLx9#2pa",
        "project": "kestrel_ml_pipeline",
        "camel": "NimbusForgeData",
        "snake": "marlowe_etl_jobs",
        "nonascii": "bjørnstad-lab",
        "urlenc": "team%20voltra%2Fexports",
        "spaced": "Voltra Finance Q3",
        "reqid": "4442587FB7D0A2F9",
        "hostid": "Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==",
        "token": "ghp_8Yt3QpLmNx2VbC7dKs9RfW4hJz6AeUo1TiGy",
        "instance": "i-0a1b2c3d4e5f67890",
        "sub": "7d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
        "rg": "rg-zorvex-prod",
        "vm": "vm-krell-gw-07",
    },
    {
        "bucket": "qorvana_ml_data",
        "obj": "raw/2024-05-01/kestrel.csv",
        "key": "Ostrava-Backup-77",
        "name": "Zentrix",
        "user": "pmueller",
        "person": "Müller",
        "fullname": "Zoë Quist",
        "host": "ostara-nas",
        "hostport": "ostara-nas:8443",
        "nodot": "ip-172-31-5-17",
        "dotted": "nas.ostara.lan",
        "acct": "987654321098",
        "akid": "ASIAJ7QF3XKQ2PZL5ABC",
        "secret": "9drTJvcXLB89EXAMPLEKEYa/b+c1Zx0yWq7Lm3Nk",
        "sas": "se=2025-03-01&sp=r&sv=2022-11-02&sr=c&sig=8fKx%2B2mWq9QzP1vY0aRtLb3cNd4eHf5gIj6kMn7oPs8%3D",
        "jwt": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoicG11ZWxsZXIifQ.S2lsbGVyU2lnbmF0dXJl",
        "gproj": "ostara-data-prod",
        "azacct": "ostaradl2",
        "container": "mueller-archiv",
        "guid": "a9c4e7b2-1d3f-4a5b-8c6d-0e1f2a3b4c5d",
        "email": "p.mueller@ostara.de",
        "ip4": "192.168.40.77",
        "ip6": "fe80::1ff:fe23:4567:890a",
        "arn": "arn:aws:s3:::qorvana-ml-data/raw/kestrel.csv",
        "path": "/Users/pmueller/ostara/creds.json",
        "wpath": "D:\\Daten\\Müller\\ostara.csv",
        "unc": "\\\\ostara-nas\\archiv",
        "password": "s3cr3tOstara!",
        "project": "OstaraLake",
        "camel": "QorvanaIngest",
        "snake": "ostara_lake_raw",
        "nonascii": "ünal-veri",
        "urlenc": "m%C3%BCller%2Fdaten",
        "spaced": "Müller Daten",
        "reqid": "0A7B3C9D2E1F4A5B",
        "hostid": "x9Kq2Lm8Np4Rs6Tv0Wy1Za3Bc5De7Fg9Hi+Jk/Lm2No4Pq6Rs8Tu0Vw==",
        "token": "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
        "instance": "i-09f8e7d6c5b4a3210",
        "sub": "0c9b8a7f-6e5d-4c3b-2a19-08f7e6d5c4b3",
        "rg": "ostara-rg",
        "vm": "ostaragw3",
    },
    {
        "bucket": "vrtx-exports-2024",
        "obj": "Hvidberg/contracts/Vestergaard.pdf",
        "key": "hvidberg_keys",
        "name": "Hvidberg",
        "user": "kvestergaard",
        "person": "Vestergaard",
        "fullname": "Karin Vestergaard",
        "host": "hvid-bastion",
        "hostport": "hvid-bastion:2222",
        "nodot": "hvidsrv03",
        "dotted": "git.hvidberg.corp",
        "acct": "000111222333",
        "akid": "AKIA2XK7QF9LMNB3ZP4Y",
        "secret": "Hv1dB3rgS3cr3tK3yAbCdEfGhIjKlMnOpQrStUv",
        "sas": "?sv=2020-10-02&st=2024-02-01T10%3A00%3A00Z&se=2024-02-02T10%3A00%3A00Z&sr=b&sp=r&sig=Qm9yZWFsaXNTZWNyZXRTaWduYXR1cmU%3D",
        "jwt": "eyJraWQiOiJodmlkIiwiYWxnIjoiRVMyNTYifQ.eyJpc3MiOiJodmlkYmVyZyJ9.aHZpZGJlcmdzaWc",
        "gproj": "hvidberg-etl-4471",
        "azacct": "hvidbergprod",
        "container": "vestergaard-docs",
        "guid": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
        "email": "karin@hvidberg.dk",
        "ip4": "172.16.254.3",
        "ip6": "2a02:6b8:0:1::feed",
        "arn": "arn:aws:kms:eu-north-1:000111222333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "path": "/srv/hvidberg/exports/vestergaard.tar.gz",
        "wpath": "C:\\Users\\kvestergaard\\AppData\\Roaming\\hvid\\token.txt",
        "unc": "\\\\hvidsrv03\\c$\\backup",
        "password": "Vester#2024gaard",
        "project": "hvidberg-lakehouse",
        "camel": "HvidbergSync",
        "snake": "vester_gaard",
        "nonascii": "søren-øst",
        "urlenc": "hvid%2Bberg%40corp",
        "spaced": "Hvidberg Legal",
        "reqid": "9F3E2D1C0B4A5968",
        "hostid": "pQ7rS9tU1vW3xY5zA7bC9dE1fG3hI5jK7lM9nO1pQ3rS5tU7vW9xY1zA3bC5=",
        "token": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "instance": "i-0123abcd4567ef890",
        "sub": "e1d2c3b4-a596-4788-9a0b-1c2d3e4f5a6b",
        "rg": "HvidbergRG",
        "vm": "hvidgw1",
    },
    {
        "bucket": "tfx-9ab3-landing",
        "obj": "tfx/acme%20corp/report final.xlsx",
        "key": "ZQX-77-Renfrew",
        "name": "Renfrewshire-Qx",
        "user": "li.wei",
        "person": "Nakamura",
        "fullname": "Haruto Nakamura",
        "host": "renfrew-db",
        "hostport": "renfrew-db:5432",
        "nodot": "tfxnode7",
        "dotted": "renfrew.tfx",
        "acct": "5558-2190-7734",
        "akid": "AKIAZ3MNQ7RT5UV8WX2Y",
        "secret": "Qx7+Rn2/Tf9Lm4Kp8Wz1Yb6Vc3Xd5Ae0Hg7Jk2Ls",
        "sas": "sp=racwdl&st=2023-06-01T00:00:00Z&se=2023-06-30T00:00:00Z&spr=https&sv=2022-11-02&sr=c&sig=cmVuZnJld1NpZ25hdHVyZUtleVZhbHVl%3D",
        "jwt": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJsaS53ZWkiLCJ0ZngiOnRydWV9.dGZ4c2lnbmF0dXJl",
        "gproj": "tfx-renfrew",
        "azacct": "tfxrenfrew",
        "container": "nakamura-lab",
        "guid": "c0ffee00-1234-4abc-9def-0123456789ab",
        "email": "li.wei+skyplane@tfx-renfrew.io",
        "ip4": "203.0.113.45",
        "ip6": "::ffff:198.51.100.7",
        "arn": "arn:aws:sts::555821907734:assumed-role/TfxRenfrewRole/li.wei",
        "path": "~/tfx/renfrew/.aws/credentials",
        "wpath": "E:\\tfx\\Nakamura Haruto\\keys\\renfrew.pem",
        "unc": "\\\\RENFREW-FS\\users\\nakamura",
        "password": "nakamura1987",
        "project": "RenfrewQx",
        "camel": "TfxRenfrewIngest",
        "snake": "nakamura_haruto",
        "nonascii": "中村-データ",
        "urlenc": "renfrew%20qx%2Fraw",
        "spaced": "Renfrew Qx Team",
        "reqid": "7c2d1e0f-aaaa-4bbb-8ccc-ddddeeeeffff",
        "hostid": "Rnfw8Qx2Lm4Np6Rs8Tv0Wy2Za4Bc6De8Fg0Hi2Jk4Lm6No8Pq0Rs2Tu4Vw6Xy8=",
        "token": "ya29.a0AfH6SMBx-Renfrew-Qx-Token-0123456789abcdef",
        "instance": "i-0fedcba9876543210",
        "sub": "11112222-3333-4444-5555-666677778888",
        "rg": "renfrew-qx-rg",
        "vm": "renfrewgw",
    },
]

# Templates: (text, facts). Facts must survive verbatim in the scrubbed text.
TEMPLATES: list[tuple[str, tuple[str, ...]]] = [
    # -- botocore / S3 -------------------------------------------------------------------
    (
        "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the GetObject operation: Access Denied",
        ("ClientError", "AccessDenied", "GetObject"),
    ),
    (
        "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: The specified bucket does not exist: {bucket}",
        ("NoSuchBucket", "ListObjectsV2"),
    ),
    (
        "An error occurred (NoSuchKey) when calling the GetObject operation: The specified key does not exist. Key: {obj}",
        ("NoSuchKey", "GetObject"),
    ),
    (
        "An error occurred (InvalidAccessKeyId) when calling the PutObject operation: The AWS Access Key Id you provided does not exist in our records. ({akid})",
        ("InvalidAccessKeyId", "PutObject"),
    ),
    (
        "An error occurred (SignatureDoesNotMatch) when calling the ListBuckets operation: The request signature we calculated does not match the signature you provided. Check your key and signing method. StringToSign: AWS4-HMAC-SHA256 {secret}",
        ("SignatureDoesNotMatch", "ListBuckets"),
    ),
    (
        "An error occurred (AccessDenied) when calling the AssumeRole operation: User: {arn} is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{acct}:role/{name}",
        ("AccessDenied", "AssumeRole"),
    ),
    (
        "An error occurred (UnauthorizedOperation) when calling the RunInstances operation: You are not authorized to perform this operation. Encoded authorization failure message: {hostid}",
        ("UnauthorizedOperation", "RunInstances"),
    ),
    (
        "An error occurred (VcpuLimitExceeded) when calling the RunInstances operation: You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to.",
        ("VcpuLimitExceeded", "RunInstances", "32"),
    ),
    (
        "An error occurred (InvalidKeyPair.NotFound) when calling the RunInstances operation: The key pair '{key}' does not exist",
        ("InvalidKeyPair.NotFound", "RunInstances"),
    ),
    (
        "An error occurred (InvalidInstanceID.NotFound) when calling the TerminateInstances operation: The instance ID '{instance}' does not exist",
        ("InvalidInstanceID.NotFound", "TerminateInstances"),
    ),
    (
        "An error occurred (BucketAlreadyOwnedByYou) when calling the CreateBucket operation: Your previous request to create the named bucket succeeded and you already own it.",
        ("BucketAlreadyOwnedByYou", "CreateBucket"),
    ),
    (
        "An error occurred (BucketAlreadyExists) when calling the CreateBucket operation: The requested bucket name is not available. Bucket {bucket} in us-west-2",
        ("BucketAlreadyExists", "CreateBucket", "us-west-2"),
    ),
    (
        "An error occurred (AuthorizationHeaderMalformed) when calling the HeadBucket operation: The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'",
        ("AuthorizationHeaderMalformed", "HeadBucket", "us-east-1", "eu-central-1"),
    ),
    (
        "An error occurred (403) when calling the HeadObject operation: Forbidden",
        ("403", "HeadObject", "Forbidden"),
    ),
    (
        "An error occurred (404) when calling the HeadObject operation: Not Found",
        ("404", "HeadObject"),
    ),
    (
        "An error occurred (ExpiredToken) when calling the GetCallerIdentity operation: The security token included in the request is expired",
        ("ExpiredToken", "GetCallerIdentity"),
    ),
    (
        "An error occurred (RequestTimeTooSkewed) when calling the PutObject operation: The difference between the request time and the current time is too large.",
        ("RequestTimeTooSkewed", "PutObject"),
    ),
    (
        "An error occurred (SlowDown) when calling the UploadPart operation (reached max retries: 4): Please reduce your request rate.",
        ("SlowDown", "UploadPart", "4"),
    ),
    (
        "An error occurred (InvalidArgument) when calling the CompleteMultipartUpload operation: Part number must be an integer between 1 and 10000, inclusive",
        ("InvalidArgument", "CompleteMultipartUpload"),
    ),
    (
        "An error occurred (NoSuchUpload) when calling the UploadPart operation: The specified upload does not exist. UploadId: {hostid}",
        ("NoSuchUpload", "UploadPart"),
    ),
    (
        "An error occurred (OptInRequired) when calling the DescribeInstances operation: You are not subscribed to this service in account {acct}.",
        ("OptInRequired", "DescribeInstances"),
    ),
    (
        "An error occurred (InvalidClientTokenId) when calling the GetCallerIdentity operation: The security token included in the request is invalid.",
        ("InvalidClientTokenId", "GetCallerIdentity"),
    ),
    (
        'An error occurred (AccessDenied) when calling the PutBucketPolicy operation: User: arn:aws:iam::{acct}:user/{user} is not authorized to perform: s3:PutBucketPolicy on resource: "arn:aws:s3:::{bucket}" because no identity-based policy allows the s3:PutBucketPolicy action',
        ("AccessDenied", "PutBucketPolicy"),
    ),
    (
        "botocore.exceptions.NoCredentialsError: Unable to locate credentials",
        ("NoCredentialsError",),
    ),
    (
        "botocore.exceptions.ProfileNotFound: The config profile ({name}) could not be found",
        ("ProfileNotFound",),
    ),
    (
        "botocore.exceptions.PartialCredentialsError: Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY",
        ("PartialCredentialsError", "AWS_SECRET_ACCESS_KEY"),
    ),
    (
        'botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "https://{bucket}.s3.ap-southeast-2.amazonaws.com/{obj}"',
        ("EndpointConnectionError",),
    ),
    (
        'botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "http://{hostport}/{bucket}"',
        ("EndpointConnectionError",),
    ),
    (
        'botocore.exceptions.ConnectTimeoutError: Connect timeout on endpoint URL: "https://sts.{dotted}/"',
        ("ConnectTimeoutError",),
    ),
    (
        'botocore.exceptions.ParamValidationError: Parameter validation failed:\nInvalid bucket name "{nonascii}": Bucket name must match the regex "^[a-zA-Z0-9.\\-_]{{1,255}}$"',
        ("ParamValidationError",),
    ),
    (
        "botocore.exceptions.ParamValidationError: Parameter validation failed: Invalid length for parameter Key, value: 0, valid min length: 1",
        ("ParamValidationError",),
    ),
    (
        "botocore.exceptions.SSOTokenLoadError: Error loading SSO Token: Token for {user} does not exist",
        ("SSOTokenLoadError",),
    ),
    (
        "botocore.exceptions.UnauthorizedSSOTokenError: The SSO session associated with this profile has expired or is otherwise invalid. To refresh this SSO session run aws sso login with the corresponding profile.",
        ("UnauthorizedSSOTokenError",),
    ),
    (
        "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the ListObjectsV2 operation: Access Denied for {bucket}",
        ("ClientError", "AccessDenied", "ListObjectsV2"),
    ),
    (
        "botocore.exceptions.InvalidRegionError: Provided region_name '{name}' doesn't match a supported format.",
        ("InvalidRegionError",),
    ),
    (
        "Failed to list objects in {bucket}: AccessDenied",
        ("AccessDenied",),
    ),
    (
        "Failed to list objects in {camel}",
        (),
    ),
    (
        "S3 transfer failed for s3://{bucket}/{obj} -> gs://{container}/x",
        (),
    ),
    # -- S3 XML bodies ------------------------------------------------------------------
    (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>{bucket}</BucketName><RequestId>{reqid}</RequestId><HostId>{hostid}</HostId></Error>',
        ("NoSuchBucket",),
    ),
    (
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>{obj}</Key><RequestId>{reqid}</RequestId><HostId>{hostid}</HostId></Error>",
        ("NoSuchKey",),
    ),
    (
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>{reqid}</RequestId><HostId>{hostid}</HostId></Error>",
        ("AccessDenied",),
    ),
    (
        "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Endpoint>{bucket}.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>{bucket}</Bucket></Error>",
        ("PermanentRedirect",),
    ),
    (
        "<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>{akid}</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n20240101T000000Z\n20240101/us-east-1/s3/aws4_request</StringToSign><SignatureProvided>{hostid}</SignatureProvided></Error>",
        ("SignatureDoesNotMatch",),
    ),
    (
        "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><AWSAccessKeyId>{akid}</AWSAccessKeyId></Error>",
        ("InvalidAccessKeyId",),
    ),
    (
        '<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-3</Region><Bucket Name="{bucket}"/><Owner>{user}</Owner></Error>',
        ("AuthorizationHeaderMalformed", "eu-west-3"),
    ),
    (
        "<Error><Code>NoSuchUpload</Code><UploadId>{hostid}</UploadId><Resource>/{bucket}/{obj}</Resource></Error>",
        ("NoSuchUpload",),
    ),
    (
        "<Error><Code>AccountProblem</Code><Message>There is a problem with your AWS account {acct} ({email})</Message></Error>",
        ("AccountProblem",),
    ),
    (
        '<Error Bucket="{bucket}" Key="{key}"><Code>SlowDown</Code></Error>',
        ("SlowDown",),
    ),
    # -- google-api-core / google-cloud-storage ------------------------------------------
    (
        "google.api_core.exceptions.NotFound: 404 GET https://storage.googleapis.com/storage/v1/b/{bucket}/o/{urlenc}?alt=media: No such object: {bucket}/{obj}",
        ("NotFound", "404"),
    ),
    (
        "404 GET https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{key}?alt=media: No such object: {bucket}/{key}",
        ("404",),
    ),
    (
        "google.api_core.exceptions.Forbidden: 403 GET https://storage.googleapis.com/storage/v1/b/{bucket}?projection=noAcl&prettyPrint=false: {email} does not have storage.buckets.get access to the Google Cloud Storage bucket. Permission 'storage.buckets.get' denied on resource (or it may not exist).",
        ("Forbidden", "403", "storage.buckets.get"),
    ),
    (
        "google.api_core.exceptions.Forbidden: 403 POST https://storage.googleapis.com/upload/storage/v1/b/{bucket}/o?uploadType=multipart: {user}@{gproj}.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud Storage object.",
        ("Forbidden", "403", "storage.objects.create"),
    ),
    (
        "google.api_core.exceptions.NotFound: 404 The specified bucket does not exist. bucket {bucket}",
        ("NotFound", "404"),
    ),
    (
        "google.api_core.exceptions.Conflict: 409 POST https://storage.googleapis.com/storage/v1/b?project={gproj}: Your previous request to create the named bucket succeeded and you already own it.",
        ("Conflict", "409"),
    ),
    (
        "google.api_core.exceptions.PermissionDenied: 403 Permission 'compute.instances.create' denied on resource 'projects/{gproj}/zones/us-central1-a/instances/{vm}'",
        ("PermissionDenied", "403", "compute.instances.create"),
    ),
    (
        "google.api_core.exceptions.PermissionDenied: 403 Cloud Resource Manager API has not been used in project {acct} before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/cloudresourcemanager.googleapis.com/overview?project={acct} then retry.",
        ("PermissionDenied", "403"),
    ),
    (
        "google.api_core.exceptions.BadRequest: 400 POST https://storage.googleapis.com/storage/v1/b?project={gproj}: Invalid bucket name: '{nonascii}'",
        ("BadRequest", "400"),
    ),
    (
        "google.api_core.exceptions.TooManyRequests: 429 The rate of change requests to the object {bucket}/{obj} exceeds the rate limit. Please reduce the rate of create, update, and delete requests.",
        ("TooManyRequests", "429"),
    ),
    (
        "google.api_core.exceptions.ServiceUnavailable: 503 GET https://storage.googleapis.com/storage/v1/b/{bucket}/o: Backend Error",
        ("ServiceUnavailable", "503"),
    ),
    (
        "google.api_core.exceptions.DeadlineExceeded: 504 Deadline Exceeded",
        ("DeadlineExceeded", "504"),
    ),
    (
        "google.auth.exceptions.DefaultCredentialsError: File {path} was not found.",
        ("DefaultCredentialsError",),
    ),
    (
        "google.auth.exceptions.RefreshError: ('invalid_grant: Token has been expired or revoked.', {{'error': 'invalid_grant', 'error_description': 'Token has been expired or revoked.'}})",
        ("RefreshError", "invalid_grant"),
    ),
    (
        "googleapiclient.errors.HttpError: <HttpError 403 when requesting https://compute.googleapis.com/compute/v1/projects/{gproj}/zones/us-east1-b/instances?alt=json returned \"Quota 'CPUS' exceeded.  Limit: 24.0 in region us-east1.\". Details: \"[{{'message': \"Quota 'CPUS' exceeded.  Limit: 24.0 in region us-east1.\", 'domain': 'usageLimits', 'reason': 'quotaExceeded'}}]\">",
        ("HttpError", "403", "us-east1", "quotaExceeded"),
    ),
    (
        "googleapiclient.errors.HttpError: <HttpError 404 when requesting https://compute.googleapis.com/compute/v1/projects/{gproj}/global/firewalls/{snake}?alt=json returned \"The resource 'projects/{gproj}/global/firewalls/{snake}' was not found\">",
        ("HttpError", "404"),
    ),
    (
        "ZONE_RESOURCE_POOL_EXHAUSTED: The zone 'projects/{gproj}/zones/europe-west4-a' does not have enough resources available to fulfill the request.",
        ("ZONE_RESOURCE_POOL_EXHAUSTED", "europe-west4-a"),
    ),
    (
        "google.api_core.exceptions.NotFound: 404 Requested project not found or user does not have access to it: {gproj}",
        ("NotFound", "404"),
    ),
    (
        "google.api_core.exceptions.Forbidden: 403 The billing account for the owning project is disabled in state absent ({name})",
        ("Forbidden", "403"),
    ),
    # -- azure-core / azure-storage ------------------------------------------------------
    (
        "azure.core.exceptions.ResourceNotFoundError: The specified container does not exist.\nRequestId:{guid}\nTime:2024-05-01T12:34:56.7890123Z\nErrorCode:ContainerNotFound",
        ("ResourceNotFoundError", "ContainerNotFound"),
    ),
    (
        'azure.core.exceptions.ResourceNotFoundError: The specified blob does not exist.\nRequestId:{guid}\nTime:2024-05-01T12:34:56.7890123Z\nErrorCode:BlobNotFound\nContent: <?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:{guid}\nTime:2024-05-01T12:34:56.7890123Z</Message></Error>',
        ("ResourceNotFoundError", "BlobNotFound"),
    ),
    (
        "azure.core.exceptions.ClientAuthenticationError: Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.\nRequestId:{guid}\nTime:2024-05-01T00:00:00.0000000Z\nErrorCode:AuthenticationFailed\nauthenticationerrordetail:Signature did not match. String to sign used was r\n2024-01-01\n/blob/{azacct}/{container}\n",
        ("ClientAuthenticationError", "AuthenticationFailed"),
    ),
    (
        "azure.core.exceptions.HttpResponseError: This request is not authorized to perform this operation using this permission.\nRequestId:{guid}\nTime:2024-05-01T00:00:00Z\nErrorCode:AuthorizationPermissionMismatch",
        ("HttpResponseError", "AuthorizationPermissionMismatch"),
    ),
    (
        "azure.core.exceptions.ServiceRequestError: <urllib3.connection.HTTPSConnection object at 0x7f3a2c1b4d90>: Failed to establish a new connection: [Errno -2] Name or service not known",
        ("ServiceRequestError",),
    ),
    (
        "azure.core.exceptions.ServiceRequestError: Cannot connect to host {azacct}.blob.core.windows.net:443 ssl:default [Name or service not known]",
        ("ServiceRequestError", "443"),
    ),
    (
        "azure.core.exceptions.ResourceExistsError: The specified container already exists.\nRequestId:{guid}\nTime:2024-01-01T00:00:00Z\nErrorCode:ContainerAlreadyExists",
        ("ResourceExistsError", "ContainerAlreadyExists"),
    ),
    (
        "(AccountNameInvalid) {snake} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.\nCode: AccountNameInvalid",
        ("AccountNameInvalid",),
    ),
    (
        "(StorageAccountAlreadyTaken) The storage account named {azacct} is already taken.\nCode: StorageAccountAlreadyTaken\nMessage: The storage account named {azacct} is already taken.",
        ("StorageAccountAlreadyTaken",),
    ),
    (
        "(ResourceGroupNotFound) Resource group '{rg}' could not be found.\nCode: ResourceGroupNotFound",
        ("ResourceGroupNotFound",),
    ),
    (
        "(AuthorizationFailed) The client '{guid}' with object id '{guid}' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write' over scope '/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}' or the scope is invalid.",
        ("AuthorizationFailed",),
    ),
    (
        "(SubscriptionNotFound) The subscription '{sub}' could not be found.\nCode: SubscriptionNotFound",
        ("SubscriptionNotFound",),
    ),
    (
        "(QuotaExceeded) Operation could not be completed as it results in exceeding approved Total Regional Cores quota. Location: westus2, Current Limit: 10, Current Usage: 8, Additional Required: 8, (Minimum) New Limit Required: 16.",
        ("QuotaExceeded", "westus2", "10", "16"),
    ),
    (
        "(SkuNotAvailable) The requested VM size 'Standard_D32_v5' is currently not available in location 'eastus2'. Please try another size or deploy to a different location.",
        ("SkuNotAvailable", "eastus2"),
    ),
    (
        "azure.identity.CredentialUnavailableError: EnvironmentCredential authentication unavailable. Environment variables are not fully configured.",
        ("CredentialUnavailableError",),
    ),
    (
        "azure.core.exceptions.ClientAuthenticationError: DefaultAzureCredential failed to retrieve a token from the included credentials. AADSTS700016: Application with identifier '{guid}' was not found in the directory '{name}'.",
        ("ClientAuthenticationError", "AADSTS700016"),
    ),
    (
        "azure.core.exceptions.HttpResponseError: Server failed to authenticate the request. https://{azacct}.blob.core.windows.net/{container}?{sas}",
        ("HttpResponseError",),
    ),
    (
        "Failed to upload to https://{azacct}.blob.core.windows.net/{container}/{obj}: ErrorCode:InvalidBlobOrBlock",
        ("InvalidBlobOrBlock",),
    ),
    (
        "ValueError: Connection string is either blank or malformed: DefaultEndpointsProtocol=https;AccountName={azacct};AccountKey={secret};EndpointSuffix=core.windows.net",
        ("ValueError",),
    ),
    (
        "azure.core.exceptions.ResourceNotFoundError: (ContainerNotFound) The specified container {container} does not exist in account {azacct}",
        ("ResourceNotFoundError", "ContainerNotFound"),
    ),
    # -- paramiko / OpenSSH ------------------------------------------------------------
    (
        "paramiko.ssh_exception.AuthenticationException: Authentication failed.",
        ("AuthenticationException",),
    ),
    (
        "paramiko.ssh_exception.NoValidConnectionsError: [Errno None] Unable to connect to port 22 on {ip4}",
        ("NoValidConnectionsError", "22"),
    ),
    (
        "paramiko.ssh_exception.NoValidConnectionsError: [Errno None] Unable to connect to port 22 on {ip6} or {ip4}",
        ("NoValidConnectionsError", "22"),
    ),
    (
        "paramiko.ssh_exception.SSHException: Error reading SSH protocol banner[Errno 104] Connection reset by peer",
        ("SSHException", "104"),
    ),
    (
        "paramiko.ssh_exception.BadHostKeyException: Host key for server '{dotted}' does not match: got 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', expected 'AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA'",
        ("BadHostKeyException",),
    ),
    (
        "paramiko.ssh_exception.PasswordRequiredException: Private key file is encrypted",
        ("PasswordRequiredException",),
    ),
    (
        "paramiko.ssh_exception.SSHException: not a valid RSA private key file",
        ("SSHException", "RSA"),
    ),
    (
        "Authentication failed for {user}",
        (),
    ),
    (
        "Authentication (publickey) failed for user {user} from {ip4} port 52144",
        (),
    ),
    (
        "ssh: connect to host {dotted} port 22: Connection refused",
        ("22",),
    ),
    (
        "ssh: connect to host {ip4} port 22: Connection timed out",
        ("22",),
    ),
    (
        "ssh: Could not resolve hostname {nodot}: Name or service not known",
        (),
    ),
    (
        "ssh: Could not resolve hostname {host}: Temporary failure in name resolution",
        (),
    ),
    (
        "{user}@{ip4}: Permission denied (publickey).",
        ("publickey",),
    ),
    (
        "{user}@{nodot}: Permission denied (publickey,gssapi-keyex,gssapi-with-mic).",
        ("publickey",),
    ),
    (
        "Warning: Permanently added '{ip4}' (ED25519) to the list of known hosts.",
        ("ED25519",),
    ),
    (
        "kex_exchange_identification: read: Connection reset by peer\nConnection reset by {ip4} port 22",
        ("22",),
    ),
    (
        'Load key "{path}": bad permissions',
        (),
    ),
    (
        "Host key verification failed. Offending ECDSA key in /home/{user}/.ssh/known_hosts:14",
        ("ECDSA",),
    ),
    (
        "channel 0: open failed: connect failed: Connection refused to {hostport}",
        (),
    ),
    # -- OSError strerrors ---------------------------------------------------------------
    ("[Errno 2] No such file or directory: '{path}'", ("2",)),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: '{wpath}'",
        ("FileNotFoundError", "2"),
    ),
    ("PermissionError: [Errno 13] Permission denied: '{path}'", ("PermissionError", "13")),
    ("[WinError 5] Access is denied: '{unc}'", ("5",)),
    ("[WinError 3] The system cannot find the path specified: '{wpath}'", ("3",)),
    ("IsADirectoryError: [Errno 21] Is a directory: '{obj}'", ("IsADirectoryError", "21")),
    ("NotADirectoryError: [Errno 20] Not a directory: '{key}'", ("NotADirectoryError", "20")),
    ("FileExistsError: [Errno 17] File exists: '{snake}'", ("FileExistsError", "17")),
    ("OSError: [Errno 28] No space left on device: '/mnt/{name}/tmp'", ("OSError", "28")),
    ("OSError: [Errno 24] Too many open files", ("OSError", "24")),
    ("ConnectionRefusedError: [Errno 111] Connection refused", ("ConnectionRefusedError", "111")),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", ("ConnectionResetError", "104")),
    ("TimeoutError: [Errno 110] Connection timed out", ("TimeoutError", "110")),
    ("socket.gaierror: [Errno -2] Name or service not known", ("gaierror",)),
    (
        "socket.gaierror: [Errno 8] nodename nor servname provided, or not known: '{host}'",
        ("gaierror", "8"),
    ),
    ("OSError: [Errno 30] Read-only file system: '{path}'", ("OSError", "30")),
    ("FileNotFoundError: {key}", ("FileNotFoundError",)),
    ("FileNotFoundError: {spaced}", ("FileNotFoundError",)),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: '{nonascii}.csv'",
        ("FileNotFoundError",),
    ),
    ("shutil.Error: [('{path}', '/mnt/{name}/x', \"[Errno 5] Input/output error\")]", ()),
    ("BrokenPipeError: [Errno 32] Broken pipe", ("BrokenPipeError", "32")),
    # -- urllib3 / requests -------------------------------------------------------------
    (
        "urllib3.exceptions.MaxRetryError: HTTPSConnectionPool(host='{dotted}', port=443): Max retries exceeded with url: /api/v1/{name}?token={token} (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f1c2d3e4f50>: Failed to establish a new connection: [Errno 111] Connection refused'))",
        ("MaxRetryError", "443", "NewConnectionError", "111"),
    ),
    (
        "requests.exceptions.ConnectionError: HTTPConnectionPool(host='{host}', port=8080): Max retries exceeded with url: /{bucket}/{obj} (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f00aa>: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution'))",
        ("ConnectionError", "8080", "NewConnectionError"),
    ),
    (
        "requests.exceptions.HTTPError: 404 Client Error: Not Found for url: https://{dotted}/v2/{project}/manifests/latest",
        ("HTTPError", "404"),
    ),
    (
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://{user}:{password}@{dotted}/api",
        ("HTTPError", "401", "Unauthorized"),
    ),
    (
        "requests.exceptions.HTTPError: 500 Server Error: Internal Server Error for url: http://{ip4}:8000/{snake}",
        ("HTTPError", "500"),
    ),
    (
        "requests.exceptions.ProxyError: HTTPSConnectionPool(host='storage.googleapis.com', port=443): Max retries exceeded with url: /b/{bucket} (Caused by ProxyError('Cannot connect to proxy.', OSError('Tunnel connection failed: 407 Proxy Authentication Required')))",
        ("ProxyError", "443", "407"),
    ),
    (
        "requests.exceptions.SSLError: HTTPSConnectionPool(host='{hostport}', port=443): Max retries exceeded with url: / (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)')))",
        ("SSLError", "CERTIFICATE_VERIFY_FAILED"),
    ),
    (
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='{nodot}', port=9443): Read timed out. (read timeout=30)",
        ("ReadTimeout", "9443", "30"),
    ),
    (
        "urllib3.exceptions.NewConnectionError: <urllib3.connection.HTTPConnection object at 0x7fa>: Failed to establish a new connection: [Errno 113] No route to host ({ip6})",
        ("NewConnectionError", "113"),
    ),
    (
        "urllib3.exceptions.ProxyError: Unable to connect to proxy http://{user}:{password}@{hostport}",
        ("ProxyError",),
    ),
    (
        "urllib3.exceptions.LocationParseError: Failed to parse: http://{nonascii}:80/x",
        ("LocationParseError",),
    ),
    (
        "requests.exceptions.InvalidURL: Failed to parse: //{host}:notaport",
        ("InvalidURL",),
    ),
    (
        "requests.exceptions.ConnectionError: ('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
        ("ConnectionError", "RemoteDisconnected"),
    ),
    (
        "requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: https://management.azure.com/subscriptions/{sub}/resourceGroups/{rg}?api-version=2021-04-01",
        ("HTTPError", "403", "Forbidden"),
    ),
    (
        "HTTP Error 429: Too Many Requests Authorization: Bearer {jwt}",
        ("429",),
    ),
    (
        "Request headers: {{'Authorization': 'Bearer {jwt}', 'x-ms-client-request-id': '{guid}'}}",
        (),
    ),
    # -- Skyplane 0.3.2 ----------------------------------------------------------------
    (
        "skyplane.exceptions.MissingBucketException: Source bucket s3://{bucket} does not exist or is not readable.",
        ("MissingBucketException",),
    ),
    (
        "MissingBucketException: Destination bucket gs://{bucket} does not exist or is not readable.",
        ("MissingBucketException",),
    ),
    (
        "NoSuchObjectException: Object {obj} does not exist, or you do not have permission to access it",
        ("NoSuchObjectException",),
    ),
    ("NoSuchObjectException: Object {key} not found", ("NoSuchObjectException",)),
    ("NoSuchObjectException: {key}", ("NoSuchObjectException",)),
    ("NoSuchObjectException: {camel}", ("NoSuchObjectException",)),
    ("NoSuchObjectException: {spaced}", ("NoSuchObjectException",)),
    (
        "PermissionsException: Key {key} already exists in AWS region us-west-1, please delete it first or use a different key name.",
        ("PermissionsException", "us-west-1"),
    ),
    (
        "PermissionsException: Key {name} already exists locally, please delete it first or use a different key name.",
        ("PermissionsException",),
    ),
    (
        "InsufficientVCPUException: Got ZONE_RESOURCE_POOL_EXHAUSTED in region asia-northeast1",
        ("InsufficientVCPUException", "ZONE_RESOURCE_POOL_EXHAUSTED", "asia-northeast1"),
    ),
    (
        "InsufficientVCPUException: Got QuotaExceeded error in Azure region uksouth",
        ("InsufficientVCPUException", "QuotaExceeded", "uksouth"),
    ),
    (
        "InsufficientVCPUException: Azure instance type Standard_D32_v5 is not available in region canadacentral. Please contact Azure support to request capacity and then run `skyplane init --reinit-azure`.",
        ("InsufficientVCPUException", "canadacentral"),
    ),
    (
        "GatewayContainerStartException: Error starting gateways. Please check gateway logs /tmp/skyplane/transfer_logs/20240501_{user}",
        ("GatewayContainerStartException",),
    ),
    (
        "TransferFailedException: Transfer failed. The following objects were not found at the destination: ['{obj}', '{key}']",
        ("TransferFailedException",),
    ),
    (
        "ChecksumMismatchException: Checksum mismatch for object {obj}",
        ("ChecksumMismatchException",),
    ),
    ("BadConfigException: Invalid configuration", ("BadConfigException",)),
    ("ValueError: Invalid S3 path: 's3:/{bucket}'", ("ValueError",)),
    ("ValueError: Invalid Azure path: {azacct}/{container}", ("ValueError",)),
    ("ValueError: Invalid region_tag aws:{name} - could not create interface", ("ValueError",)),
    ("ValueError: Invalid dest_region {nodot}, unknown provider", ("ValueError",)),
    ("ValueError: No GCP zone found for region {name}", ("ValueError",)),
    (
        "ValueError: No instance found with name {vm}, us-central1, []",
        ("ValueError", "us-central1"),
    ),
    (
        "ValueError: Failed to upload {obj} to bucket {bucket} upload id {hostid}: AccessDenied",
        ("ValueError", "AccessDenied"),
    ),
    (
        "ValueError: Failed to upload {key} to bucket {container} upload id {reqid}: {camel}",
        ("ValueError",),
    ),
    (
        "Exception: Failed to dispatch chunk requests {vm}: {snake}",
        ("Exception",),
    ),
    ("Exception: Private key file {path} doesn't exist", ("Exception",)),
    (
        "Exception: No public key from keys: ['{key}'] on master {nodot} not a pair for private ssh key {wpath}",
        ("Exception",),
    ),
    ("Exception: IBM Config file not foud in {path}", ("Exception",)),
    (
        "RuntimeError: Failed to install Docker on aws:eu-west-1, {ip4}: OUT {user}\nERR permission denied",
        ("RuntimeError", "aws:eu-west-1"),
    ),
    ("TimeoutError: Readiness probe expired on AWSServer(eu-west-1:{instance})", ("TimeoutError",)),
    (
        "TimeoutError: Timeout waiting for 'gateway {vm} ready' (timeout 120.00s, interval 0.10s)",
        ("TimeoutError",),
    ),
    ("KeyError: 'Invalid flag: {snake}'", ("KeyError",)),
    ("KeyError: '{name}'", ("KeyError",)),
    ("KeyError: '{camel}'", ("KeyError",)),
    ("ValueError: Invalid boolean value: {name}", ("ValueError",)),
    ("ValueError: Unknown provider {name}", ("ValueError",)),
    (
        "ValueError: Provisioning in gcp:us-west4-b: instance OS {name} not supported",
        ("ValueError", "gcp:us-west4-b"),
    ),
    ("ValueError: Partition {key} already exists", ("ValueError",)),
    ("ValueError: No server found on port 8081 for {host}", ("ValueError", "8081")),
    (
        "skyplane.exceptions.SkyplaneException: Failed to create obj store interface for {gproj}",
        ("SkyplaneException",),
    ),
    (
        "SkyplaneGatewayException: Gateway errors on node {vm} ({ip4})",
        ("SkyplaneGatewayException",),
    ),
    # -- names after little words, in brackets, JSON, quotes -----------------------------
    ("Could not find a bucket named {name}", ()),
    ("The container called {container} is locked", ()),
    ("Cannot write to {bucket} at {hostport}", ()),
    ("Upload failed on {nodot} for {person}", ()),
    ("Owner is {fullname} ({email})", ()),
    ("Error in project [{project}]: quota", ()),
    (
        'Resource {{"bucket": "{bucket}", "owner": "{fullname}", "project": "{gproj}"}} is locked',
        (),
    ),
    (
        '{{"error": {{"code": 403, "message": "{email} lacks access", "status": "PERMISSION_DENIED"}}}}',
        ("403", "PERMISSION_DENIED"),
    ),
    (
        '{{"error": {{"code": 404, "message": "Not found: {urlenc}", "errors": [{{"domain": "global", "reason": "notFound"}}]}}}}',
        ("404", "notFound"),
    ),
    ('user "{person}" is not allowed', ()),
    ("for user '{user}'", ()),
    ("Hello {fullname}, your transfer to {spaced} failed", ()),
    ("Transfer of {camel} by {person} failed", ()),
    ("Job «{nonascii}» failed", ()),
    ("Failed: {urlenc}", ()),
    ("Error at {dotted}:443 - reset", ("443",)),
    ("connect to {hostport} failed", ()),
    ("instance {instance} in aws:us-east-2 failed", ("aws:us-east-2",)),
    ("Running on aws:us-east-1:{instance}", ()),
    ("Error for subscription {sub} in westeurope", ("westeurope",)),
    ("AccountId {acct} lacks permission", ()),
    ("project number {acct} not found", ()),
    ("The caller's account {acct} is suspended", ()),
    (
        "Signed URL https://storage.googleapis.com/{bucket}/{obj}?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential={user}%40{gproj}.iam.gserviceaccount.com&X-Goog-Signature={hostid} expired",
        (),
    ),
    (
        "presigned https://{bucket}.s3.amazonaws.com/{obj}?X-Amz-Credential={akid}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature={reqid} expired",
        (),
    ),
    ("AWS_ACCESS_KEY_ID={akid} AWS_SECRET_ACCESS_KEY={secret} failed", ()),
    ("aws_secret_access_key = {secret}", ()),
    ("credentials {akid} / {secret} rejected", ()),
    ("Access key {akid} is disabled", ()),
    ("secret {secret}", ()),
    ("SAS token ?{sas} rejected", ()),
    ("Invalid SAS {sas}", ()),
    ("Authorization: Bearer {jwt}", ()),
    ("token {jwt} expired", ()),
    ("JWT {jwt} expired at 2024-01-01", ()),
    ("GitHub token {token} revoked", ()),
    ("password {password} incorrect for {user}", ()),
    ("login failed: password={password}", ()),
    ("mysql://{user}:{password}@{hostport}/{snake}: connection refused", ()),
    ("Connection string: AccountName={azacct};AccountKey={secret}", ()),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDhvaVp",
        (),
    ),
    ("Unknown host {ip6}", ()),
    ("peer [{ip6}]:22 closed", ("22",)),
    ("Listening on {ip4}:8080 failed", ("8080",)),
    ("Denied: {arn}", ()),
    ("Role {arn} cannot be assumed", ()),
    ("UNC path {unc} unreachable", ()),
    ("Config at {wpath} unreadable", ()),
    ("Path {path} missing", ()),
    ("Contact {email} for access", ()),
    ("owner={email}", ()),
    ("Hostname {dotted} not in known_hosts", ()),
    ("DNS lookup failed for {dotted}", ()),
    ('Bucket "{bucket}" in region eu-central-1 is not empty', ("eu-central-1",)),
    ("Bucket {bucket}: BucketNotEmpty", ("BucketNotEmpty",)),
    ("Storage account {azacct} in eastus: AccountIsDisabled", ("eastus", "AccountIsDisabled")),
    ("GCS bucket {bucket} in project {gproj} is requester-pays", ()),
    ("Dataset {snake} in project {project} not found", ()),
    ("Table `{gproj}.{snake}.{camel}` not found", ()),
    ("VM {vm} in resource group {rg} stopped", ()),
    ("Tenant {guid} blocked the app", ()),
    ("ClientID {guid} invalid", ()),
    ("Could not read {name}'s credentials", ()),
    ("{fullname} <{email}> cancelled the transfer", ()),
    ("Transfer {spaced} cancelled", ()),
    ("Got error from {nonascii}: timeout", ()),
    ("Team {name} exceeded quota of 500 GB", ("500",)),
    ("Exceeded 1000 requests per second on {host}", ("1000",)),
    (
        "Transfer from aws:us-east-1 to gcp:us-central1-a failed after 3 retries (max_instances=8)",
        ("aws:us-east-1", "gcp:us-central1-a", "3", "max_instances", "8"),
    ),
    (
        "Transfer from azure:westus2 to aws:ap-south-1 failed: HTTP 503",
        ("azure:westus2", "aws:ap-south-1", "503"),
    ),
    ("--max-instances 4 --solver ilp failed for {bucket}", ("4", "ilp")),
]

# Word-named buckets: the honest limit, measured, not required.
WORD_NAMES = ("backups", "data", "logs", "archive", "reports", "images", "finance", "marketing")
WORD_TEMPLATES = (
    "Failed to list objects in {w}",
    "NoSuchBucket: The specified bucket does not exist: {w}",
    "<Error><Code>NoSuchBucket</Code><BucketName>{w}</BucketName></Error>",
    "404 GET https://storage.googleapis.com/storage/v1/b/{w}/o: No such object: {w}/x",
    "The specified container {w} does not exist",
    "MissingBucketException: Source bucket {w} does not exist or is not readable.",
    "Could not write to {w}",
    "Bucket '{w}' not found",
)


def fields_of(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def cases() -> list[tuple[str, dict[str, str], tuple[str, ...]]]:
    """(text, planted values by field, facts): each template with every world."""
    out = []
    for template, facts in TEMPLATES:
        names = fields_of(template)
        worlds = WORLDS if names else WORLDS[:1]
        for world in worlds:
            planted = {name: world[name] for name in names}
            out.append((template.format(**world), planted, facts))
    return out
