"""``faceledger collections``, ``faces`` and ``users``: catalogue commands through the API."""

from __future__ import annotations

import click

from .client import call, client_options, rekognition
from .output import emit, handle_errors

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def collections() -> None:
    """Create, list, describe and delete collections."""


@collections.command("create")
@click.argument("collection_id")
@click.option("--retention-days", type=int, default=None, help="Delete enrolments after this many days.")
@client_options
@json_option
@handle_errors
def collections_create(collection_id: str, retention_days: int | None, endpoint: str | None,
                       profile_file: str | None, as_json: bool) -> None:
    """Create COLLECTION_ID (pinned to the service's model version)."""
    tags = {"faceledger:retention-days": str(retention_days)} if retention_days else None
    out = call(rekognition(endpoint, profile_file).create_collection, CollectionId=collection_id, Tags=tags)
    emit(out, as_json, lambda o: f"created {collection_id} ({o.get('FaceModelVersion')})")


@collections.command("list")
@client_options
@json_option
@handle_errors
def collections_list(endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """List every collection (all pages)."""
    rek = rekognition(endpoint, profile_file)
    ids: list[str] = []
    token = None
    while True:
        out = call(rek.list_collections, NextToken=token)
        ids += out.get("CollectionIds", [])
        token = out.get("NextToken")
        if not token:
            break
    emit({"CollectionIds": ids}, as_json, lambda o: "\n".join(o["CollectionIds"]))


@collections.command("describe")
@click.argument("collection_id")
@client_options
@json_option
@handle_errors
def collections_describe(collection_id: str, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Face count, user count, model version and creation time."""
    out = call(rekognition(endpoint, profile_file).describe_collection, CollectionId=collection_id)
    out["CreationTimestamp"] = out["CreationTimestamp"].isoformat()
    emit(out, as_json, lambda o: "\n".join(f"{k}: {v}" for k, v in o.items()))


@collections.command("delete")
@click.argument("collection_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@client_options
@json_option
@handle_errors
def collections_delete(collection_id: str, yes: bool, endpoint: str | None, profile_file: str | None,
                       as_json: bool) -> None:
    """Delete a collection and every face in it (the ledger keeps its records)."""
    if not yes and not click.confirm(f"Delete {collection_id} and all its faces?"):
        raise click.Abort()
    out = call(rekognition(endpoint, profile_file).delete_collection, CollectionId=collection_id)
    emit(out, as_json, lambda o: f"deleted {collection_id}")


@click.group()
def faces() -> None:
    """List and delete enrolled faces."""


@faces.command("list")
@click.argument("collection_id")
@click.option("--user", "user_id", default=None, help="Only faces of this user.")
@client_options
@json_option
@handle_errors
def faces_list(collection_id: str, user_id: str | None, endpoint: str | None, profile_file: str | None,
               as_json: bool) -> None:
    """Every face in the collection (all pages)."""
    rek = rekognition(endpoint, profile_file)
    items: list[dict] = []
    token = None
    while True:
        out = call(rek.list_faces, CollectionId=collection_id, UserId=user_id, NextToken=token, MaxResults=1000)
        items += out.get("Faces", [])
        token = out.get("NextToken")
        if not token:
            break
    emit({"Faces": items}, as_json, lambda o: "\n".join(
        f"{f['FaceId']}  {f.get('ExternalImageId', '-'):<30} {f.get('UserId', '')}" for f in o["Faces"]))


@faces.command("delete")
@click.argument("collection_id")
@click.argument("face_ids", nargs=-1, required=True)
@client_options
@json_option
@handle_errors
def faces_delete(collection_id: str, face_ids: tuple[str, ...], endpoint: str | None, profile_file: str | None,
                 as_json: bool) -> None:
    """Delete faces by id."""
    out = call(rekognition(endpoint, profile_file).delete_faces, CollectionId=collection_id, FaceIds=list(face_ids))
    emit(out, as_json, lambda o: f"deleted {len(o.get('DeletedFaces', []))} face(s)")


@click.group()
def users() -> None:
    """Users: one person's faces grouped under a UserId."""


@users.command("create")
@click.argument("collection_id")
@click.argument("user_id")
@client_options
@json_option
@handle_errors
def users_create(collection_id: str, user_id: str, endpoint: str | None, profile_file: str | None,
                 as_json: bool) -> None:
    out = call(rekognition(endpoint, profile_file).create_user, CollectionId=collection_id, UserId=user_id)
    emit(out, as_json, lambda o: f"created user {user_id}")


@users.command("delete")
@click.argument("collection_id")
@click.argument("user_id")
@client_options
@json_option
@handle_errors
def users_delete(collection_id: str, user_id: str, endpoint: str | None, profile_file: str | None,
                 as_json: bool) -> None:
    out = call(rekognition(endpoint, profile_file).delete_user, CollectionId=collection_id, UserId=user_id)
    emit(out, as_json, lambda o: f"deleted user {user_id}")


@users.command("list")
@click.argument("collection_id")
@client_options
@json_option
@handle_errors
def users_list(collection_id: str, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    rek = rekognition(endpoint, profile_file)
    items: list[dict] = []
    token = None
    while True:
        out = call(rek.list_users, CollectionId=collection_id, NextToken=token)
        items += out.get("Users", [])
        token = out.get("NextToken")
        if not token:
            break
    emit({"Users": items}, as_json, lambda o: "\n".join(f"{u['UserId']}  {u['UserStatus']}" for u in o["Users"]))


@users.command("associate")
@click.argument("collection_id")
@click.argument("user_id")
@click.argument("face_ids", nargs=-1, required=True)
@client_options
@json_option
@handle_errors
def users_associate(collection_id: str, user_id: str, face_ids: tuple[str, ...], endpoint: str | None,
                    profile_file: str | None, as_json: bool) -> None:
    out = call(rekognition(endpoint, profile_file).associate_faces, CollectionId=collection_id, UserId=user_id,
               FaceIds=list(face_ids))
    emit(out, as_json, lambda o: f"associated {len(o.get('AssociatedFaces', []))} face(s); "
                                 f"{len(o.get('UnsuccessfulFaceAssociations', []))} refused")


@users.command("disassociate")
@click.argument("collection_id")
@click.argument("user_id")
@click.argument("face_ids", nargs=-1, required=True)
@client_options
@json_option
@handle_errors
def users_disassociate(collection_id: str, user_id: str, face_ids: tuple[str, ...], endpoint: str | None,
                       profile_file: str | None, as_json: bool) -> None:
    out = call(rekognition(endpoint, profile_file).disassociate_faces, CollectionId=collection_id,
               UserId=user_id, FaceIds=list(face_ids))
    emit(out, as_json, lambda o: f"disassociated {len(o.get('DisassociatedFaces', []))} face(s)")
