"""``faceledger collections``, ``faces`` and ``users``: catalogue commands through the API."""

from __future__ import annotations

import click

from .client import all_pages, call, client_options, own_call, rekognition
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
    ids = all_pages(rekognition(endpoint, profile_file).list_collections, "CollectionIds")
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


@collections.command("migrate")
@click.argument("collection_id")
@click.option("--model", "model_version", required=True, help="The model pack (model version) to migrate to.")
@click.option("--use-thumbnails", is_flag=True,
              help="Re-describe faces whose enrolled image is not in a bucket from their review thumbnail "
                   "(lossy: weaker descriptors).")
@click.option("--dry-run", is_flag=True, help="Stage and report, but do not swap the collection over.")
@click.option("--batch", type=click.IntRange(1, 500), default=50, show_default=True,
              help="Faces per request.")
@client_options
@json_option
@handle_errors
def collections_migrate(collection_id: str, model_version: str, use_thumbnails: bool, dry_run: bool, batch: int,
                        endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Re-index COLLECTION_ID in place under another pack, from the images the deployment keeps. Exit 12 if not all.

    Each face is re-described from its enrolled image, found by SHA-256 in the service's buckets (or its
    thumbnail, with --use-thumbnails). The collection keeps serving its old pack until every face has a new
    vector; then one transaction swaps them all and re-pins it. Faces that cannot be re-described are
    listed (face id, external image id, why): re-enrol or delete them and run the command again.
    """
    after = None
    staged: list = []
    must: list = []
    out: dict = {}
    while True:
        out = own_call(endpoint, profile_file, "MigrateCollection", {
            "CollectionId": collection_id, "ModelVersion": model_version, "After": after, "MaxFaces": batch,
            "UseThumbnails": use_thumbnails or None, "DryRun": dry_run or None})
        staged += out.get("Staged", [])
        must += out.get("MustReEnroll", [])
        after = out.get("NextFaceId")
        if not after:
            break
    result = {"CollectionId": collection_id, "ModelVersion": out.get("ModelVersion", model_version),
              "Swapped": bool(out.get("Swapped")), "Staged": staged, "MustReEnroll": must,
              "Remaining": out.get("Remaining", 0)}
    if out.get("Note"):
        result["Note"] = out["Note"]

    def text(o: dict) -> str:
        lines = [f"{collection_id}: {len(o['Staged'])} face(s) re-described under {o['ModelVersion']} this run; "
                 + ("swapped over." if o["Swapped"] else f"not swapped ({o['Remaining']} face(s) without a vector).")]
        if o["MustReEnroll"]:
            lines.append("must be re-enrolled (face id, external image id, reason):")
            lines += [f"  {m['FaceId']}  {m.get('ExternalImageId') or '-'}  {m['Reason']}" for m in o["MustReEnroll"]]
        return "\n".join(lines)

    emit(result, as_json, text)
    if not result["Swapped"] and not result.get("Note") and not dry_run:
        raise SystemExit(12)


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
    items = all_pages(rekognition(endpoint, profile_file).list_faces, "Faces", CollectionId=collection_id,
                      UserId=user_id, MaxResults=1000)
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


def _user_command(action: str, method: str):  # type: ignore[no-untyped-def]
    @click.argument("collection_id")
    @click.argument("user_id")
    @client_options
    @json_option
    @handle_errors
    def command(collection_id: str, user_id: str, endpoint: str | None, profile_file: str | None,
                as_json: bool) -> None:
        out = call(getattr(rekognition(endpoint, profile_file), method), CollectionId=collection_id,
                   UserId=user_id)
        emit(out, as_json, lambda o: f"{action} user {user_id}")
    return command


users.command("create", help="Create a user in a collection.")(_user_command("created", "create_user"))
users.command("delete", help="Delete a user (its faces stay, unassociated).")(_user_command("deleted", "delete_user"))


@users.command("list")
@click.argument("collection_id")
@client_options
@json_option
@handle_errors
def users_list(collection_id: str, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    items = all_pages(rekognition(endpoint, profile_file).list_users, "Users", CollectionId=collection_id)
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
