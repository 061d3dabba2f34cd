with source as (

    {{ latest_snapshot('usage_completions') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        user_id,
        api_key_id,
        model,
        service_tier,
        cast(batch as boolean) as batch,
        cast(input_tokens as bigint) as input_tokens,
        cast(output_tokens as bigint) as output_tokens,
        cast(input_cached_tokens as bigint) as input_cached_tokens,
        cast(input_cache_write_tokens as bigint) as input_cache_write_tokens,
        cast(input_uncached_tokens as bigint) as input_uncached_tokens,
        cast(input_text_tokens as bigint) as input_text_tokens,
        cast(output_text_tokens as bigint) as output_text_tokens,
        cast(input_cached_text_tokens as bigint) as input_cached_text_tokens,
        cast(input_audio_tokens as bigint) as input_audio_tokens,
        cast(input_cached_audio_tokens as bigint) as input_cached_audio_tokens,
        cast(output_audio_tokens as bigint) as output_audio_tokens,
        cast(input_image_tokens as bigint) as input_image_tokens,
        cast(input_cached_image_tokens as bigint) as input_cached_image_tokens,
        cast(output_image_tokens as bigint) as output_image_tokens,
        cast(num_model_requests as bigint) as num_model_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
